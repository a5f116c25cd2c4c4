// tests/e2e/what_if/WhatIfJdbc.java: pgjdbc connections for the what-if reality test.
// Usage: java -cp postgresql.jar WhatIfJdbc.java URL COUNT; one line per connection.
import java.sql.Connection;
import java.sql.DriverManager;
import java.util.Properties;

public class WhatIfJdbc {
  public static void main(String[] args) {
    int n = Integer.parseInt(args[1]);
    for (int i = 0; i < n; i++) {
      Properties p = new Properties();
      p.setProperty("user", "postgres");
      p.setProperty("sslmode", "require");
      p.setProperty("ApplicationName", "whatif-jdbc");
      p.setProperty("connectTimeout", "10");
      try (Connection c = DriverManager.getConnection(args[0], p)) {
        System.out.println("ok");
      } catch (Exception e) {
        System.out.println("fail " + String.valueOf(e.getMessage()).replace('\n', ' '));
      }
    }
  }
}

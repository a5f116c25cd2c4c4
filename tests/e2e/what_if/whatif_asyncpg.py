"""asyncpg connections for the what-if reality test: one per JSON config in argv[3]."""
import asyncio
import json
import ssl
import sys

import asyncpg


async def main(host, port, configs):
    for cfg in configs:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if cfg.get("max"):
            ctx.maximum_version = getattr(ssl.TLSVersion, cfg["max"])
        if cfg.get("ciphers"):
            ctx.set_ciphers(cfg["ciphers"])
        try:
            c = await asyncpg.connect(host=host, port=port, user="postgres", database="postgres",
                                      ssl=ctx, timeout=10, server_settings={
                                          "application_name": "whatif-asyncpg"})
            await c.close()
            print("ok", flush=True)
        except Exception as e:  # noqa: BLE001 - any failure is an outcome here
            print("fail", type(e).__name__, e, flush=True)


asyncio.run(main(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])))

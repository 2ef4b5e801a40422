"""A device built the way the official Python SDK samples build it (azure-iot-device 2.14),
for grading with `hubswap-conformance run`.

It provisions once with DPS (group enrollment, derived key), connects to the assigned hub and
sends telemetry every second. Reconnection is left to the SDK (connection_retry=True, its
default), and it reprovisions only when the SDK gives up on a send: the policy most samples
ship. The runner grades what the cloud sees of it.
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json

from azure.iot.device import Message
from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient


def derive(group_key, registration_id):
    mac = hmac.new(base64.b64decode(group_key), registration_id.encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


async def provision(args, key):
    prov = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=args.provisioning_host,
        registration_id=args.registration_id,
        id_scope=args.id_scope,
        symmetric_key=key,
        server_verification_cert=args.ca_pem,
    )
    result = await prov.register()
    if result.status != "assigned":
        raise RuntimeError(f"DPS answered {result.status}")
    return result.registration_state.assigned_hub


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ca", required=True)
    p.add_argument("--provisioning-host", required=True)
    p.add_argument("--id-scope", required=True)
    p.add_argument("--registration-id", required=True)
    p.add_argument("--group-key", required=True)
    args = p.parse_args()
    with open(args.ca) as f:
        args.ca_pem = f.read()
    key = derive(args.group_key, args.registration_id)
    while True:
        try:
            hub = await provision(args, key)
        except Exception as e:  # noqa: BLE001 - a sample: log and retry
            print(f"provisioning failed: {e}", flush=True)
            await asyncio.sleep(5)
            continue
        client = IoTHubDeviceClient.create_from_symmetric_key(
            symmetric_key=key, hostname=hub, device_id=args.registration_id, server_verification_cert=args.ca_pem
        )
        try:
            await client.connect()
            print(f"connected to {hub}", flush=True)
            n = 0
            while True:
                n += 1
                await client.send_message(Message(json.dumps({"n": n})))
                await asyncio.sleep(1)
        except Exception as e:  # noqa: BLE001 - the sample's "give up and reprovision" path
            print(f"hub failed: {e}; reprovisioning", flush=True)
        finally:
            try:
                await client.shutdown()
            except Exception:  # noqa: BLE001
                pass


if __name__ == "__main__":
    asyncio.run(main())

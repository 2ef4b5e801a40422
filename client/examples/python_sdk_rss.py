"""Idle RSS of the official Python SDK (azure-iot-device 2.14) for comparison with
hubswap-device: provision through DPS with a group key, connect to the assigned hub, idle,
print VmRSS. Run it against `hubswap-mock-cloud serve` (the SDK hard-codes port 8883):

    python3 client/examples/python_sdk_rss.py --ca DATA/ca.pem --provisioning-host 127.0.0.20 \
        --id-scope 0ne00000MCK --group-key KEY --registration-id rss-py --idle 5
"""
import argparse, base64, hashlib, hmac, time

from azure.iot.device import IoTHubDeviceClient, ProvisioningDeviceClient


def rss():
    with open("/proc/self/status") as f:
        return {l.split(":")[0]: l.split(":")[1].strip() for l in f if l.startswith(("VmRSS", "VmHWM", "Threads"))}


p = argparse.ArgumentParser()
for a in ("--ca", "--provisioning-host", "--id-scope", "--group-key", "--registration-id"):
    p.add_argument(a, required=True)
p.add_argument("--idle", type=float, default=5)
args = p.parse_args()
key = base64.b64encode(hmac.new(base64.b64decode(args.group_key), args.registration_id.encode(), hashlib.sha256).digest()).decode()
ca = open(args.ca).read()
prov = ProvisioningDeviceClient.create_from_symmetric_key(
    provisioning_host=args.provisioning_host, registration_id=args.registration_id,
    id_scope=args.id_scope, symmetric_key=key, server_verification_cert=ca)
result = prov.register()
dev = IoTHubDeviceClient.create_from_symmetric_key(
    symmetric_key=key, hostname=result.registration_state.assigned_hub,
    device_id=result.registration_state.device_id, server_verification_cert=ca)
dev.connect()
time.sleep(args.idle)
print("python azure-iot-device connected and idle:", rss())
dev.shutdown()

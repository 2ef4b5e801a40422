"""An official-SDK device (Python azure-iot-device 2.14) against hubswap-mock-cloud.

Flow: derive the device key from the group key, provision over DPS MQTT, connect to the
assigned hub, send telemetry, get the twin, report properties, then wait for one desired patch
(acknowledged IoT Central style) and one direct method (answered), and exit 0.

Progress goes to stdout, one line per step, so the Rust test can act on READY.
With --linger N it keeps answering methods and patches for N seconds instead (CLI demo).
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time

from azure.iot.device import Message, MethodResponse
from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient

MODEL_ID = "dtmi:hubswap:test;1"


def say(*parts):
    print(*parts, flush=True)


def derive(group_key, registration_id):
    mac = hmac.new(base64.b64decode(group_key), registration_id.encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ca", required=True)
    p.add_argument("--provisioning-host", required=True)
    p.add_argument("--id-scope", required=True)
    p.add_argument("--registration-id", required=True)
    p.add_argument("--group-key", required=True)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--linger", type=float, default=0)
    a = p.parse_args()
    ca = open(a.ca).read()
    key = derive(a.group_key, a.registration_id)

    t0 = time.monotonic()
    prov = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=a.provisioning_host,
        registration_id=a.registration_id,
        id_scope=a.id_scope,
        symmetric_key=key,
        server_verification_cert=ca,
    )
    prov.provisioning_payload = {"modelId": MODEL_ID}
    result = await prov.register()
    t1 = time.monotonic()
    if result.status != "assigned":
        say("FAILED provisioning", result.status)
        return 1
    hub = result.registration_state.assigned_hub
    device_id = result.registration_state.device_id
    say("PROVISIONED", hub, device_id, "%.1f ms" % ((t1 - t0) * 1000))

    client = IoTHubDeviceClient.create_from_symmetric_key(
        symmetric_key=key, hostname=hub, device_id=device_id, server_verification_cert=ca
    )
    got_desired = asyncio.Event()
    got_method = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def on_desired(patch):
        if "targetTemperature" not in patch:
            return  # the SDK also hands over the current desired document after connecting
        version = patch.get("$version")
        acks = {}
        for name, value in patch.items():
            if not name.startswith("$"):
                acks[name] = {"value": value, "ac": 200, "av": version, "ad": "completed"}
        await client.patch_twin_reported_properties(acks)
        say("DESIRED", json.dumps(patch, sort_keys=True))
        loop.call_soon_threadsafe(got_desired.set)

    async def on_method(request):
        response = MethodResponse.create_from_method_request(request, 200, {"echo": request.payload, "name": request.name})
        await client.send_method_response(response)
        say("METHOD", request.name)
        loop.call_soon_threadsafe(got_method.set)

    client.on_twin_desired_properties_patch_received = on_desired
    client.on_method_request_received = on_method
    t2 = time.monotonic()
    await client.connect()
    t3 = time.monotonic()
    say("CONNECTED", "%.1f ms" % ((t3 - t2) * 1000))

    msg = Message(json.dumps({"temperature": 21.5}), content_encoding="utf-8", content_type="application/json")
    msg.custom_properties["sdk"] = "python"
    await client.send_message(msg)
    twin = await client.get_twin()
    say("TWIN", json.dumps(twin, sort_keys=True))
    await client.patch_twin_reported_properties({"firmware": "1.0.0"})
    say("READY")

    try:
        if a.linger > 0:
            await asyncio.sleep(a.linger)
        else:
            await asyncio.wait_for(asyncio.gather(got_desired.wait(), got_method.wait()), a.timeout)
    except asyncio.TimeoutError:
        say("FAILED timeout waiting for desired patch and method")
        return 1
    await client.shutdown()
    say("DONE")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

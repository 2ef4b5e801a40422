// An official-SDK device (Node azure-iot-device 1.18, DPS over HTTPS) against
// hubswap-mock-cloud. Same flow as ../python_device.py; progress lines on stdout.
// The CA comes from NODE_EXTRA_CA_CERTS (set by the caller).
'use strict';

const crypto = require('crypto');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Http } = require('azure-iot-provisioning-device-http');
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const MODEL_ID = 'dtmi:hubswap:test;1';

function arg(name) {
  const i = process.argv.indexOf('--' + name);
  if (i < 0 || i + 1 >= process.argv.length) throw new Error('missing --' + name);
  return process.argv[i + 1];
}

function say(...parts) {
  process.stdout.write(parts.join(' ') + '\n');
}

async function main() {
  const host = arg('provisioning-host');
  const scope = arg('id-scope');
  const regId = arg('registration-id');
  const groupKey = arg('group-key');
  const timeoutMs = 60000;
  const key = crypto.createHmac('SHA256', Buffer.from(groupKey, 'base64')).update(regId, 'utf8').digest('base64');

  const t0 = Date.now();
  const prov = ProvisioningDeviceClient.create(host, scope, new Http(), new SymmetricKeySecurityClient(regId, key));
  prov.setProvisioningPayload({ modelId: MODEL_ID });
  const result = await prov.register();
  say('PROVISIONED', result.assignedHub, result.deviceId, (Date.now() - t0) + ' ms');

  const client = Client.fromConnectionString(
    `HostName=${result.assignedHub};DeviceId=${result.deviceId};SharedAccessKey=${key}`, Mqtt);
  await client.setOptions({ modelId: MODEL_ID });
  const t1 = Date.now();
  await client.open();
  say('CONNECTED', (Date.now() - t1) + ' ms');

  let resolveDesired, resolveMethod;
  const gotDesired = new Promise((r) => { resolveDesired = r; });
  const gotMethod = new Promise((r) => { resolveMethod = r; });

  client.onDeviceMethod('reboot', (request, response) => {
    response.send(200, { echo: request.payload, name: request.methodName }, (err) => {
      if (err) { say('FAILED method response', err.message); process.exit(1); }
      say('METHOD', request.methodName);
      resolveMethod();
    });
  });

  const msg = new Message(JSON.stringify({ temperature: 21.5 }));
  msg.contentType = 'application/json';
  msg.contentEncoding = 'utf-8';
  msg.properties.add('sdk', 'node');
  await client.sendEvent(msg);

  const twin = await client.getTwin();
  say('TWIN', JSON.stringify({ desired: twin.properties.desired.$version, reported: twin.properties.reported.$version }));
  await new Promise((resolve, reject) => twin.properties.reported.update({ firmware: '1.0.0' }, (e) => (e ? reject(e) : resolve())));
  twin.on('properties.desired', (patch) => {
    if (patch.targetTemperature === undefined) return; // the initial full desired document
    const ack = { targetTemperature: { value: patch.targetTemperature, ac: 200, av: patch.$version, ad: 'completed' } };
    twin.properties.reported.update(ack, (e) => {
      if (e) { say('FAILED ack', e.message); process.exit(1); }
      say('DESIRED', JSON.stringify(patch));
      resolveDesired();
    });
  });
  say('READY');

  const timer = setTimeout(() => { say('FAILED timeout waiting for desired patch and method'); process.exit(1); }, timeoutMs);
  await Promise.all([gotDesired, gotMethod]);
  clearTimeout(timer);
  await client.close();
  say('DONE');
  process.exit(0);
}

main().catch((e) => { say('FAILED', e && (e.stack || e.message || e)); process.exit(1); });

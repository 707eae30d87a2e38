// Drives every admin action through Alibaba's official @alicloud/pop-core RPC client, with
// GET (its default) and POST, and reports what it returned or threw, as JSON on stdout.
// Usage: node pop_core_actions.js ENDPOINT ACCESS_KEY_ID ACCESS_KEY_SECRET INSTANCE_ID
'use strict';
const RPCClient = require('@alicloud/pop-core');

const [endpoint, accessKeyId, accessKeySecret, instanceId] = process.argv.slice(2);

function client(secret = accessKeySecret, keyId = accessKeyId) {
  return new RPCClient({ endpoint, apiVersion: '2020-04-20', accessKeyId: keyId,
                         accessKeySecret: secret });
}

async function attempt(fn) {
  try {
    return { ok: true, body: await fn() };
  } catch (err) {
    return { ok: false, code: err.code || err.name, message: err.message };
  }
}

async function main() {
  const results = {};
  for (const method of ['GET', 'POST']) {
    const c = client();
    const opts = { method };
    const clientId = `GID_popcore@@@device-${method.toLowerCase()}`;
    const r = {};
    r.register = await attempt(() => c.request('RegisterDeviceCredential',
        { ClientId: clientId, InstanceId: instanceId }, opts));
    r.get = await attempt(() => c.request('GetDeviceCredential',
        { ClientId: clientId, InstanceId: instanceId }, opts));
    r.refresh = await attempt(() => c.request('RefreshDeviceCredential',
        { ClientId: clientId, InstanceId: instanceId }, opts));
    r.list = await attempt(() => c.request('ListDeviceCredentialClientId',
        { GroupId: 'GID_popcore', InstanceId: instanceId, PageNo: '1', PageSize: '10' }, opts));
    r.unregister = await attempt(() => c.request('UnRegisterDeviceCredential',
        { ClientId: clientId, InstanceId: instanceId }, opts));
    r.getAfterUnregister = await attempt(() => c.request('GetDeviceCredential',
        { ClientId: clientId, InstanceId: instanceId }, opts));
    r.unregisterMissing = await attempt(() => c.request('UnRegisterDeviceCredential',
        { ClientId: clientId, InstanceId: instanceId }, opts));
    r.badSecret = await attempt(() => client('wrong-secret').request('GetDeviceCredential',
        { ClientId: clientId, InstanceId: instanceId }, opts));
    r.unknownKey = await attempt(() => client(accessKeySecret, 'AKunknown').request(
        'GetDeviceCredential', { ClientId: clientId, InstanceId: instanceId }, opts));
    r.unknownAction = await attempt(() => c.request('DescribeNothing',
        { InstanceId: instanceId }, opts));
    r.missingClientId = await attempt(() => c.request('GetDeviceCredential',
        { InstanceId: instanceId }, opts));
    results[method] = r;
  }
  process.stdout.write(JSON.stringify(results));
}

main().catch((err) => { console.error(err); process.exit(1); });

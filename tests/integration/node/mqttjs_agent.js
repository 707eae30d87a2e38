// One MQTT.js client driven by JSON-line commands on stdin, for scenario tests written in
// Python. Every command carries an `id`; its outcome comes back as {event: 'reply', id, ...}.
// Client events come back as {event: 'connect' | 'message' | 'sent' | 'received' |
// 'disconnect' | 'error' | 'close', ...} ('sent'/'received': PUBLISH packets on the wire).
// Commands:
//   {op: 'connect', options}    mqtt.connect(options) with reconnectPeriod 0; options.holdAcks
//                               (5.0 only) keeps every received QoS 1/2 message unacknowledged
//   {op: 'subscribe', topic, options}, {op: 'unsubscribe', topic}
//   {op: 'publish', topic, payload, options}
//   {op: 'end', force, options} clean DISCONNECT (options.reasonCode, options.properties)
//   {op: 'drop'}                destroys the socket without DISCONNECT
'use strict';
const mqtt = require('mqtt');
const readline = require('readline');

let client = null;
const ACK_HELD = 'acknowledgement held back by the test';

function emit(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

function errorFields(err) {
  return err ? { error: err.message, code: err.code } : {};
}

function messageEvent(topic, payload, packet) {
  return { event: 'message', topic, payload: payload.toString(), qos: packet.qos,
           retain: packet.retain, dup: packet.dup, properties: packet.properties || {} };
}

const commands = {
  connect(command) {
    const { holdAcks, ...options } = command.options;
    options.reconnectPeriod = 0;
    options.connectTimeout = 5000;
    if (holdAcks) {
      // Answering with an error makes MQTT.js read on without sending PUBACK/PUBREC (not
      // answering at all would stall its input): the message stays unacknowledged.
      options.customHandleAcks = (topic, payload, packet, done) => {
        emit(messageEvent(topic, payload, packet));
        done(new Error(ACK_HELD));
      };
    }
    client = mqtt.connect(options);
    client.on('connect', (connack) => emit({
      event: 'connect', sessionPresent: connack.sessionPresent,
      reasonCode: connack.reasonCode ?? connack.returnCode ?? 0,
      properties: connack.properties || {} }));
    client.on('message', (topic, payload, packet) => emit(messageEvent(topic, payload, packet)));
    // What actually went on the wire for PUBLISH: shows whether a Topic Alias replaced the topic.
    client.on('packetsend', (packet) => {
      if (packet.cmd === 'publish') {
        emit({ event: 'sent', topic: packet.topic.toString(),
               topicAlias: packet.properties?.topicAlias ?? null });
      }
    });
    // PUBLISH packets in wire order (MQTT.js emits 'message' for QoS 2 only at PUBREL).
    client.on('packetreceive', (packet) => {
      if (packet.cmd === 'publish') {
        emit({ event: 'received', topic: packet.topic.toString(), qos: packet.qos,
               dup: packet.dup, topicAlias: packet.properties?.topicAlias ?? null });
      }
    });
    client.on('disconnect', (packet) => emit({ event: 'disconnect',
                                               reasonCode: packet.reasonCode ?? 0 }));
    client.on('error', (err) => {
      if (err.message !== ACK_HELD) emit({ event: 'error', ...errorFields(err) });
    });
    client.on('close', () => emit({ event: 'close' }));
    emit({ event: 'reply', id: command.id });
  },

  subscribe(command) {
    client.subscribe(command.topic, command.options || { qos: 0 }, (err, granted) => {
      emit({ event: 'reply', id: command.id, ...errorFields(err),
             granted: (granted || []).map((g) => g.qos) });
    });
  },

  unsubscribe(command) {
    client.unsubscribe(command.topic, (err, packet) => {
      emit({ event: 'reply', id: command.id, ...errorFields(err),
             reasonCodes: packet?.reasonCodes ?? null });
    });
  },

  publish(command) {
    client.publish(command.topic, command.payload, command.options || {}, (err, packet) => {
      emit({ event: 'reply', id: command.id, ...errorFields(err),
             reasonCode: packet?.reasonCode ?? null });
    });
  },

  end(command) {
    client.end(Boolean(command.force), command.options || {}, () => {
      emit({ event: 'reply', id: command.id });
    });
  },

  drop(command) {
    client.stream.destroy();
    emit({ event: 'reply', id: command.id });
  },
};

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const command = JSON.parse(line);
  try {
    commands[command.op](command);
  } catch (err) {
    emit({ event: 'reply', id: command.id, ...errorFields(err) });
  }
});
lines.on('close', () => {
  if (client && client.connected) {
    client.end(true, () => process.exit(0));
  } else {
    process.exit(0);
  }
});

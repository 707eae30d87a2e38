// Writes the seed corpus of fuzz_mqtt_codec: one file per packet type and version, made by
// the encoder, each prefixed with the target's selector byte (version, sender). Run by hand
// when the codec gains a packet shape worth seeding:
//   build-fuzz/tests/fuzz/fuzz_mqtt_seeds tests/fuzz/corpus/fuzz_mqtt_codec
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>

#include "credmq/mqtt/codec.hpp"

using namespace credmq::mqtt;

namespace {

std::string directory;
int written = 0;

void write(const std::string& name, ProtocolVersion version, const Packet& packet, bool server) {
  std::string bytes(1, static_cast<char>((static_cast<int>(version) - 3) | (server ? 0x04 : 0)));
  encode(packet, version, bytes);
  const std::string path =
      directory + "/v" + std::to_string(static_cast<int>(version)) + "-" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  ++written;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIRECTORY\n", argv[0]);
    return 2;
  }
  directory = argv[1];
  Properties message;
  message.payload_format_indicator = 1;
  message.message_expiry_interval = 10;
  message.content_type = "text/plain";
  message.response_topic = "reply/to";
  message.correlation_data = "id-1";
  message.user_properties = {{"k", "v"}};
  for (ProtocolVersion version :
       {ProtocolVersion::v3_1, ProtocolVersion::v3_1_1, ProtocolVersion::v5}) {
    const bool v5 = version == ProtocolVersion::v5;
    Connect connect;
    connect.version = version;
    connect.client_id = "GID_demo@@@sensor-1";
    connect.keep_alive = 60;
    connect.username = "DeviceCredential|DC.abc|mqtt-cn-0001";
    connect.password = "c2VjcmV0";
    if (v5) {
      connect.properties.session_expiry_interval = 3600;
      connect.properties.receive_maximum = 20;
      connect.properties.maximum_packet_size = 65536;
      connect.properties.topic_alias_maximum = 10;
      connect.properties.request_problem_information = 1;
      connect.properties.user_properties = {{"a", "b"}};
    }
    write("connect", version, connect, false);
    connect.clean_start = false;
    connect.will = Will{"devices/sensor-1/status", "offline", 1, true, {}};
    if (v5) {
      connect.will->properties = message;
      connect.will->properties.will_delay_interval = 5;
      connect.properties.authentication_method = "SCRAM";
      connect.properties.authentication_data = "data";
    }
    write("connect-will", version, connect, false);

    Connack connack{version != ProtocolVersion::v3_1, 0, {}};
    if (v5) {
      connack.properties.maximum_qos = 1;
      connack.properties.retain_available = 1;
      connack.properties.assigned_client_identifier = "auto-1";
      connack.properties.topic_alias_maximum = 10;
      connack.properties.server_keep_alive = 30;
      connack.properties.wildcard_subscription_available = 1;
      connack.properties.shared_subscription_available = 1;
    }
    write("connack", version, connack, true);
    write("connack-refused", version, Connack{false, v5 ? std::uint8_t{0x86} : std::uint8_t{4}, {}},
          true);

    for (std::uint8_t qos = 0; qos <= 2; ++qos) {
      Publish publish{qos,
                      qos == 1,
                      qos == 2,
                      "sensors/room-1/temperature",
                      static_cast<std::uint16_t>(qos ? 10 + qos : 0),
                      {},
                      "21.5"};
      if (v5) {
        publish.properties = message;
        publish.properties.topic_alias = 3;
      }
      write("publish-qos" + std::to_string(qos), version, publish, false);
      if (v5 && qos == 1) {
        publish.properties.subscription_identifiers = {1, 300};
        write("publish-to-client", version, publish, true);
      }
    }
    if (v5) {
      Publish aliased{0, false, false, "", 0, {}, "x"};
      aliased.properties.topic_alias = 3;
      write("publish-alias", version, aliased, false);
    }
    const char* ack_names[] = {"puback", "pubrec", "pubrel", "pubcomp"};
    int index = 0;
    for (PacketType type :
         {PacketType::puback, PacketType::pubrec, PacketType::pubrel, PacketType::pubcomp}) {
      Ack ack{type, 11, 0, {}};
      write(ack_names[index], version, ack, false);
      if (v5) {
        ack.reason_code = type == PacketType::pubrel || type == PacketType::pubcomp ? 0x92 : 0x10;
        ack.properties.reason_string = "why";
        ack.properties.user_properties = {{"k", "v"}};
        write(std::string(ack_names[index]) + "-reason", version, ack, true);
      }
      ++index;
    }

    Subscribe subscribe{
        5,
        {},
        {{"sensors/+/temperature", {1, false, false, 0}}, {"alerts/#", {2, false, false, 0}}}};
    if (v5) {
      subscribe.properties.subscription_identifiers = {42};
      subscribe.properties.user_properties = {{"k", "v"}};
      subscribe.subscriptions.push_back({"$share/group/jobs/#", {1, false, true, 0}});
      subscribe.subscriptions[0].second = {0, true, true, 2};
    }
    write("subscribe", version, subscribe, false);
    Suback suback{5, {}, {1, 2, 0x80}};
    if (v5) suback.properties.reason_string = "partly";
    write("suback", version, suback, true);
    Unsubscribe unsubscribe{6, {}, {"sensors/+/temperature", "alerts/#"}};
    if (v5) unsubscribe.properties.user_properties = {{"k", "v"}};
    write("unsubscribe", version, unsubscribe, false);
    write("unsuback", version,
          Unsuback{6, {}, v5 ? std::vector<std::uint8_t>{0, 0x11} : std::vector<std::uint8_t>{}},
          true);
    write("pingreq", version, Pingreq{}, false);
    write("pingresp", version, Pingresp{}, true);
    write("disconnect", version, Disconnect{}, false);
    if (v5) {
      Disconnect with_will{0x04, {}};
      with_will.properties.session_expiry_interval = 0;
      with_will.properties.reason_string = "bye";
      write("disconnect-will", version, with_will, false);
      Disconnect revoked{0x98, {}};
      revoked.properties.server_reference = "other";
      write("disconnect-server", version, revoked, true);
      Auth auth{0x18, {}};
      auth.properties.authentication_method = "SCRAM";
      auth.properties.authentication_data = "challenge";
      write("auth", version, auth, false);

      // A standalone property block (selector bit 3), as stored for retained messages.
      std::string block(1, static_cast<char>(0x0A));
      encode_properties(message, block);
      std::ofstream(directory + "/v5-properties", std::ios::binary) << block;
      ++written;
    }
  }
  std::printf("%d seeds written to %s\n", written, directory.c_str());
  return 0;
}

// Command line and config file of the credmq executable.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "credmq/common/log.hpp"
#include "credmq/server.hpp"

namespace credmq {

struct CommandLine {
  ServerOptions server;
  log::Level log_level = log::Level::info;
  bool help = false;
  bool version = false;
  std::string help_text;
};

// Parses argv, then the --config file (INI: `name = value`, same names as the flags);
// flags override the file. Throws std::invalid_argument with a message for the user.
CommandLine parse_command_line(int argc, const char* const argv[]);

}  // namespace credmq

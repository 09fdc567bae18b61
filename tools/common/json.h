// JSON output for the tools and examples: one string quoter, so every --json escapes alike.
#ifndef ZMQKIT_TOOLS_COMMON_JSON_H_
#define ZMQKIT_TOOLS_COMMON_JSON_H_

#include <string>
#include <string_view>

namespace zmqkit::tools {

// `text` as a JSON string literal, quotes included; control characters escaped, other bytes as is.
std::string JsonString(std::string_view text);

}  // namespace zmqkit::tools

#endif  // ZMQKIT_TOOLS_COMMON_JSON_H_

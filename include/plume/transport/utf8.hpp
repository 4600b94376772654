// plume/transport/utf8.hpp — incremental UTF-8 validation for text messages;
// the validator lives in plume/detail/utf8.hpp, shared with the wire layer.
//
//   plume::transport::Utf8Validator v;
//   bool ok = v.feed(part1) && v.feed(part2) && v.complete();
#pragma once

#include "plume/detail/utf8.hpp"

namespace plume::transport {

using plume::detail::is_valid_utf8;
using plume::detail::Utf8Validator;

}  // namespace plume::transport

// tests/fuzz/v2_drop.hpp — what a V2 server-to-client frame loses: a binary
// push (kind 0) has no ref, an empty header string reads back as null, and a
// numeric ref in a binary header reads back as the string of its digits.
#pragma once

#include "plume/wire/message.hpp"

namespace plume_fuzz {

struct V2Drop {
    static void null_if_empty(std::optional<plume::wire::Ref>& s) {
        if (s && s->empty()) s.reset();
        if (s) s = plume::wire::Ref(s->str());  // binary headers are strings
    }
    void operator()(plume::wire::Message& m, bool binary) const {
        if (!binary) return;
        m.ref.reset();
        null_if_empty(m.join_ref);
    }
    void operator()(plume::wire::Reply& r, bool binary) const {
        if (!binary) return;
        null_if_empty(r.join_ref);
        null_if_empty(r.ref);
    }
};

}  // namespace plume_fuzz

// plume/wire/ref.hpp — a join_ref or ref as the client wrote it.
//
// Phoenix treats refs as opaque terms and echoes them as it got them:
// phoenix.js sends strings ("5"), but a raw client may send numbers, and
// `[1, 2, "room:x", "ping", {}]` is answered `[1, 2, "room:x", "phx_reply", …]`.
// A Ref is the text of the ref plus whether it was a JSON number, so the
// reply writes it back in the same kind. It converts from and to std::string,
// which is what almost all code wants; only the serializers look at the kind.
//
//   plume::wire::Ref a = "5";                              // the string "5"
//   auto b = plume::wire::Ref::number("5");                // the number 5
//   a == b;                                                // false: "5" is not 5
//   std::string s = b;                                     // "5"
//
// A null ref is an empty std::optional<Ref>. Numbers keep their value: an
// integer's text is echoed byte for byte, a fraction or exponent in its
// shortest round-trip form (1.50 → 1.5), as Phoenix's Jason re-encodes it.
// Refs of other JSON kinds (objects, arrays, booleans) are refused on decode:
// no client makes them, and echoing an object as a ref only invites trouble.
#pragma once

#include <compare>
#include <string>
#include <string_view>
#include <utility>

namespace plume::wire {

class Ref {
  public:
    Ref() = default;
    Ref(std::string text) : text_(std::move(text)) {}
    Ref(const char* text) : text_(text) {}
    explicit Ref(std::string_view text) : text_(text) {}

    /// A ref that was a JSON number; `text` is its JSON spelling ("42", "1.5").
    static Ref number(std::string text) {
        Ref r(std::move(text));
        r.number_ = true;
        return r;
    }

    const std::string& str() const& noexcept { return text_; }
    std::string str() && noexcept { return std::move(text_); }
    bool is_number() const noexcept { return number_; }
    bool empty() const noexcept { return text_.empty(); }

    // Reads as the std::string it mostly is. An rvalue Ref hands its text
    // over by value, so `std::string s = opt.value_or("")` cannot dangle.
    operator const std::string&() const& noexcept { return text_; }
    operator std::string() && noexcept { return std::move(text_); }

    /// Same kind and same text: the number 5 is not the string "5", as in
    /// Phoenix, where join_refs are compared as terms.
    friend bool operator==(const Ref&, const Ref&) = default;
    /// A string ref with this text.
    friend bool operator==(const Ref& r, const std::string& s) noexcept {
        return !r.number_ && r.text_ == s;
    }
    friend bool operator==(const Ref& r, const char* s) noexcept {
        return !r.number_ && r.text_ == s;
    }

  private:
    std::string text_;
    bool number_ = false;
};

}  // namespace plume::wire

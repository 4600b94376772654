// plume/result.hpp — a value, or the std::error_code that says why there is none.
//
// C++20 has no std::expected, and plume must not throw while it handles input
// from the network, so functions that can fail on bad input (decoding a frame,
// verifying a token) return a Result<T>. Errors are std::error_code values from
// a per-layer category (plume::wire::error, plume::server::token_error), so
// callers compare them to enumerators and print them with .message().
//
//   plume::Result<plume::wire::Message> r = plume::wire::V2Json::decode(frame);
//   if (!r) log("bad frame: " + r.error().message());
//   else handle(*r);
#pragma once

#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace plume {

template <class T>
class [[nodiscard]] Result {
  public:
    using value_type = T;

    Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
    Result(std::error_code error) : state_(std::in_place_index<1>, error) {}
    template <class E>
    requires std::is_error_code_enum_v<E> Result(E error)
        : state_(std::in_place_index<1>, make_error_code(error)) {}

    bool has_value() const noexcept { return state_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    /// The value; throws std::system_error(error()) when there is none, the way
    /// std::expected::value() throws — a caller's bug, never a decoding path.
    T& value() & { return check(), std::get<0>(state_); }
    const T& value() const& { return check(), std::get<0>(state_); }
    T&& value() && { return check(), std::get<0>(std::move(state_)); }

    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    template <class U>
    T value_or(U&& fallback) const& {
        return has_value() ? std::get<0>(state_) : static_cast<T>(std::forward<U>(fallback));
    }

    /// The reason there is no value; an empty error_code when there is one.
    std::error_code error() const noexcept {
        return has_value() ? std::error_code{} : std::get<1>(state_);
    }

  private:
    void check() const {
        if (!has_value()) throw std::system_error(std::get<1>(state_));
    }

    std::variant<T, std::error_code> state_;
};

}  // namespace plume

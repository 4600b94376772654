// plume/transport/detail/slots.hpp — a vector of records reused through a
// free list, for the per-io_context services (ReadinessSet, Deadlines) whose
// users hold a slot number: a number stays valid until given back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace plume::transport::detail {

template <class Slot>
class Slots {
  public:
    /// A free slot's number (one given back, else a new one); its record is
    /// as the last user left it, or default-made.
    std::uint32_t take() {
        if (!free_.empty()) {
            auto n = free_.back();
            free_.pop_back();
            return n;
        }
        all_.emplace_back();
        return static_cast<std::uint32_t>(all_.size() - 1);
    }
    void give(std::uint32_t n) { free_.push_back(n); }

    Slot& operator[](std::uint32_t n) noexcept { return all_[n]; }
    const Slot& operator[](std::uint32_t n) const noexcept { return all_[n]; }
    /// Every record, free ones included.
    std::vector<Slot>& all() noexcept { return all_; }
    const std::vector<Slot>& all() const noexcept { return all_; }
    std::size_t taken() const noexcept { return all_.size() - free_.size(); }

    /// Moves every record's `owner` out, for a service's shutdown: the
    /// owners (connections) end once the service has let go of its state.
    std::vector<std::shared_ptr<void>> take_owners() {
        std::vector<std::shared_ptr<void>> owners;
        for (auto& s : all_)
            if (s.owner) owners.push_back(std::move(s.owner));
        return owners;
    }

  private:
    std::vector<Slot> all_;
    std::vector<std::uint32_t> free_;
};

}  // namespace plume::transport::detail

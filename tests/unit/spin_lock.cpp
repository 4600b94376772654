// detail::SpinLock: the lock of a connection's mailbox and of a join's held
// broadcasts. Two threads add to one counter under it; none of the adds is lost.
#include <catch2/catch.hpp>

#include <plume/detail/spin_lock.hpp>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

TEST_CASE("SpinLock: mutual exclusion between threads", "[detail]") {
    plume::detail::SpinLock lock;
    std::uint64_t counter = 0;  // a plain counter: a lost update shows without the lock
    std::vector<std::uint64_t> order;
    constexpr int per_thread = 200'000;
    auto work = [&] {
        for (int i = 0; i < per_thread; ++i) {
            std::lock_guard guard(lock);
            ++counter;
            if (i % 1000 == 0) order.push_back(counter);  // a vector: corrupts unguarded
        }
    };
    std::thread a(work), b(work);
    a.join();
    b.join();
    CHECK(counter == 2 * per_thread);
    CHECK(order.size() == 2 * per_thread / 1000);
    CHECK(std::is_sorted(order.begin(), order.end()));
}

TEST_CASE("SpinLock: try_lock fails while held", "[detail]") {
    plume::detail::SpinLock lock;
    CHECK(lock.try_lock());
    CHECK_FALSE(lock.try_lock());
    lock.unlock();
    CHECK(lock.try_lock());
    lock.unlock();
    CHECK(sizeof(lock) == 1);
}

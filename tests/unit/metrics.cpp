// The metrics registry (plume/metrics/metrics.hpp) and its Prometheus text
// exposition (prometheus.hpp): exact text, histogram buckets, escaping,
// merging of per-thread shards.
#include <catch2/catch.hpp>

#include <plume/metrics/prometheus.hpp>

#include <stdexcept>
#include <thread>
#include <vector>

namespace pm = plume::metrics;

TEST_CASE("metrics: the exact exposition of a small registry", "[metrics]") {
    pm::Registry r;
    auto sent = r.counter("app_sent_total", "Messages sent.", {"kind"});
    auto chat = sent.series({"chat"});
    auto ping = sent.series({"ping"});
    auto open = r.gauge("app_open", "Open now.").series({});
    auto depth = r.histogram("app_depth_bytes", "Depth.", {}, {0, 10, 100.5}).series({});
    r.collect([](pm::Snapshot& s) { s.gauge("app_rooms", "Rooms.").add({}, 3); });

    chat.inc();
    chat.inc(2);
    open.inc();
    open.inc();
    open.dec();
    depth.observe(0);
    depth.observe(10);
    depth.observe(50);
    depth.observe(1000);

    CHECK(pm::to_prometheus(r.snapshot()) ==
          "# HELP app_sent_total Messages sent.\n"
          "# TYPE app_sent_total counter\n"
          "app_sent_total{kind=\"chat\"} 3\n"
          "app_sent_total{kind=\"ping\"} 0\n"
          "# HELP app_open Open now.\n"
          "# TYPE app_open gauge\n"
          "app_open 1\n"
          "# HELP app_depth_bytes Depth.\n"
          "# TYPE app_depth_bytes histogram\n"
          "app_depth_bytes_bucket{le=\"0\"} 1\n"
          "app_depth_bytes_bucket{le=\"10\"} 2\n"
          "app_depth_bytes_bucket{le=\"100.5\"} 3\n"
          "app_depth_bytes_bucket{le=\"+Inf\"} 4\n"
          "app_depth_bytes_sum 1060\n"
          "app_depth_bytes_count 4\n"
          "# HELP app_rooms Rooms.\n"
          "# TYPE app_rooms gauge\n"
          "app_rooms 3\n");
    (void)ping;

    auto snap = r.snapshot();
    CHECK(snap.value("app_sent_total", {{"kind", "chat"}}) == 3);
    CHECK(snap.value("app_rooms") == 3);
    const auto* h = snap.histogram("app_depth_bytes");
    REQUIRE(h);
    CHECK(h->buckets == std::vector<std::uint64_t>{1, 2, 3});
    CHECK(h->count == 4);
    CHECK(h->sum == 1060);
}

TEST_CASE("metrics: help and label values are escaped", "[metrics]") {
    pm::Registry r;
    r.counter("x_total", "A \\ backslash\nand a \"quote\".", {"v"}).series({"a\\b\"c\nd"}).inc();
    CHECK(pm::to_prometheus(r.snapshot()) ==
          "# HELP x_total A \\\\ backslash\\nand a \"quote\".\n"
          "# TYPE x_total counter\n"
          "x_total{v=\"a\\\\b\\\"c\\nd\"} 1\n");
}

TEST_CASE("metrics: histograms with labels put le last; gauges go negative", "[metrics]") {
    pm::Registry r;
    auto h = r.histogram("d_seconds", "D.", {"op", "kind"}, {0.005, 0.25}).series({"get", "x"});
    auto g = r.gauge("g", "G.").series({});
    h.observe(0.001);
    h.observe(0.25);
    h.observe(0.5);
    g.dec();
    g.dec();
    CHECK(pm::to_prometheus(r.snapshot()) ==
          "# HELP d_seconds D.\n"
          "# TYPE d_seconds histogram\n"
          "d_seconds_bucket{op=\"get\",kind=\"x\",le=\"0.005\"} 1\n"
          "d_seconds_bucket{op=\"get\",kind=\"x\",le=\"0.25\"} 2\n"
          "d_seconds_bucket{op=\"get\",kind=\"x\",le=\"+Inf\"} 3\n"
          "d_seconds_sum{op=\"get\",kind=\"x\"} 0.751\n"
          "d_seconds_count{op=\"get\",kind=\"x\"} 3\n"
          "# HELP g G.\n"
          "# TYPE g gauge\n"
          "g -2\n");
}

TEST_CASE("metrics: shards of many threads merge, also after the threads end", "[metrics]") {
    pm::Registry r;
    auto c = r.counter("c_total", "C.").series({});
    auto g = r.gauge("g", "G.").series({});
    auto h = r.histogram("h", "H.", {}, {1}).series({});
    constexpr int threads = 8, each = 100'000;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
            for (int i = 0; i < each; ++i) {
                c.inc();
                h.observe(t % 2 ? 0.5 : 2);
            }
            // A gauge raised on one thread and lowered on another.
            if (t % 2)
                g.dec();
            else
                g.inc();
        });
    // Snapshots while recording see whole values, never more than recorded.
    for (int i = 0; i < 10; ++i)
        CHECK(r.snapshot().value("c_total") <= threads * each);
    for (auto& t : pool)
        t.join();
    auto snap = r.snapshot();
    CHECK(snap.value("c_total") == threads * each);
    CHECK(snap.value("g") == 0);
    const auto* hv = snap.histogram("h");
    REQUIRE(hv);
    CHECK(hv->count == threads * each);
    CHECK(hv->buckets[0] == threads * each / 2);
    CHECK(hv->sum == (0.5 + 2) * threads * each / 2);
}

TEST_CASE("metrics: declaring is checked, and closed once recording began", "[metrics]") {
    pm::Registry r;
    auto f = r.counter("a_total", "A.", {"k"});
    CHECK_THROWS_AS(f.series({}), std::invalid_argument);
    CHECK_THROWS_AS(r.counter("a_total", "again"), std::invalid_argument);
    CHECK_THROWS_AS(r.histogram("h", "H.", {}, {2, 1}), std::invalid_argument);
    auto one = f.series({"one"});
    one.inc();
    // Same series again: found, not declared.
    f.series({"one"}).inc();
    CHECK(r.snapshot().value("a_total", {{"k", "one"}}) == 2);
    CHECK_THROWS_AS(f.series({"two"}), std::logic_error);
    CHECK_THROWS_AS(r.gauge("late", "L."), std::logic_error);
    // A default handle records nothing, and does not crash.
    pm::Counter{}.inc();
    pm::Histogram{}.observe(1);
}

TEST_CASE("metrics: two registries on one thread keep apart", "[metrics]") {
    pm::Registry a, b;
    auto ca = a.counter("n_total", "N.").series({});
    auto cb = b.counter("n_total", "N.").series({});
    ca.inc();
    cb.inc(5);
    ca.inc();
    CHECK(a.snapshot().value("n_total") == 2);
    CHECK(b.snapshot().value("n_total") == 5);
}

TEST_CASE("metrics: prometheus_response carries the 0.0.4 content type", "[metrics]") {
    pm::Registry r;
    r.gauge("up", "Up.").series({}).inc();
    auto res = pm::prometheus_response(r.snapshot());
    CHECK(res.status == 200);
    CHECK(res.body == "# HELP up Up.\n# TYPE up gauge\nup 1\n");
    bool found = false;
    for (auto& [k, v] : res.headers)
        if (k == "Content-Type") found = v == "text/plain; version=0.0.4; charset=utf-8";
    CHECK(found);
}

TEST_CASE("metrics: inc_together bumps several counters of one registry", "[metrics]") {
    pm::Registry r;
    auto family = r.counter("app_total", "Things.", {"kind"});
    auto a = family.series({"a"});
    auto b = family.series({"b"});
    auto c = r.counter("app_bytes_total", "Bytes.").series({});
    pm::Counter::inc_together(a, 1, b, 2, c, 300);
    std::thread([&] { pm::Counter::inc_together(a, 1, c, 5); }).join();
    pm::Counter::inc_together(pm::Counter{}, 7);  // no registry: nothing
    auto snap = r.snapshot();
    CHECK(snap.value("app_total", {{"kind", "a"}}) == 2);
    CHECK(snap.value("app_total", {{"kind", "b"}}) == 2);
    CHECK(snap.value("app_bytes_total") == 305);
}

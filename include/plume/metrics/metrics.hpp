// plume/metrics/metrics.hpp — counters, gauges and histograms that the hot
// path updates without locks or shared cache lines, merged when read.
//
//   plume::metrics::Registry r;
//   auto sent = r.counter("app_sent_total", "Messages sent.", {"kind"});
//   auto chat = sent.series({"chat"});           // look the series up once
//   chat.inc();                                  // any thread, no lock, no RMW
//   auto depth = r.histogram("app_depth_bytes", "Queue depth.", {}, {64, 1024, 65536});
//   depth.series({}).observe(300);
//   r.collect([](plume::metrics::Snapshot& s) {  // values read at scrape time
//       s.gauge("app_rooms", "Rooms open.").add({}, double(rooms.size()));
//   });
//   auto snap = r.snapshot();                    // merged across threads
//   snap.value("app_sent_total", {{"kind", "chat"}});  // 1
//
// Every thread that records gets its own shard of cells (plain relaxed
// atomics that only that thread writes, so an increment is a load and a
// store, no lock prefix); snapshot() sums the shards. Shards belong to the
// registry and outlive their threads, so nothing recorded is lost.
// Families and series are declared before anything is recorded: the first
// record fixes the layout (declaring later throws std::logic_error), which
// keeps the hot path free of resizing and label cardinality bounded.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace plume::metrics {

enum class Type { counter, gauge, histogram };

inline std::string_view type_name(Type t) noexcept {
    switch (t) {
        case Type::counter:
            return "counter";
        case Type::gauge:
            return "gauge";
        case Type::histogram:
            return "histogram";
    }
    return "untyped";
}

using Labels = std::vector<std::pair<std::string, std::string>>;

/// A histogram as read: `buckets[i]` counts observations <= bounds[i]
/// (cumulative, as Prometheus exposes them); count includes those above the
/// last bound (the +Inf bucket).
struct HistogramValue {
    std::vector<double> bounds;
    std::vector<std::uint64_t> buckets;
    std::uint64_t count = 0;
    double sum = 0;
};

struct Sample {
    Labels labels;
    double value = 0;          // counters and gauges
    HistogramValue histogram;  // histograms
};

struct FamilySnapshot {
    std::string name;
    std::string help;
    Type type = Type::counter;
    std::vector<Sample> samples;

    /// Adds a sample (for collectors); returns *this to chain.
    FamilySnapshot& add(Labels labels, double value) {
        samples.push_back(Sample{std::move(labels), value, {}});
        return *this;
    }
};

/// Every family's merged values at one moment, in declaration order
/// (collectors' families after the registry's own).
struct Snapshot {
    std::vector<FamilySnapshot> families;

    const FamilySnapshot* family(std::string_view name) const {
        for (const auto& f : families)
            if (f.name == name) return &f;
        return nullptr;
    }
    const Sample* sample(std::string_view name, const Labels& labels = {}) const {
        const auto* f = family(name);
        if (!f) return nullptr;
        for (const auto& s : f->samples)
            if (s.labels == labels) return &s;
        return nullptr;
    }
    /// A counter's or gauge's value; 0 when there is no such series.
    double value(std::string_view name, const Labels& labels = {}) const {
        const auto* s = sample(name, labels);
        return s ? s->value : 0;
    }
    const HistogramValue* histogram(std::string_view name, const Labels& labels = {}) const {
        const auto* s = sample(name, labels);
        return s ? &s->histogram : nullptr;
    }

    /// Starts a family (for collectors).
    FamilySnapshot& counter(std::string name, std::string help) {
        return families.emplace_back(
            FamilySnapshot{std::move(name), std::move(help), Type::counter, {}});
    }
    FamilySnapshot& gauge(std::string name, std::string help) {
        return families.emplace_back(
            FamilySnapshot{std::move(name), std::move(help), Type::gauge, {}});
    }
};

class Registry;

namespace detail {

using Cell = std::atomic<std::uint64_t>;

// One thread's cells. Only the owning thread writes them: a relaxed load and
// store (no read-modify-write) is enough, and readers see whole values.
struct Shard {
    explicit Shard(std::size_t n) : cells(new Cell[n]), size(n) {
        for (std::size_t i = 0; i < n; ++i)
            cells[i].store(0, std::memory_order_relaxed);
    }
    std::unique_ptr<Cell[]> cells;
    std::size_t size;
};

inline void bump(Cell& c, std::uint64_t n) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

inline void add_double(Cell& c, double v) noexcept {
    double d = std::bit_cast<double>(c.load(std::memory_order_relaxed)) + v;
    c.store(std::bit_cast<std::uint64_t>(d), std::memory_order_relaxed);
}

// A thread's last used shard: the registry's id and the shard's cells.
struct CachedShard {
    std::uint64_t registry = 0;
    Cell* cells = nullptr;
};

inline std::uint64_t next_registry_id() noexcept {
    static std::atomic<std::uint64_t> last{0};
    return ++last;
}

}  // namespace detail

/// A counter series: only goes up.
class Counter {
  public:
    Counter() = default;
    void inc(std::uint64_t n = 1) const;

    /// a.inc(na), b.inc(nb), ... with one look-up of this thread's shard,
    /// for a hot path that counts several things at once. The counters
    /// belong to one registry (or none: then nothing is recorded).
    template <class... More>
    [[gnu::always_inline]] static void inc_together(const Counter& first, std::uint64_t n,
                                                    const More&... more);

  private:
    friend class Registry;
    template <class>
    friend class Family;
    template <class... More>
    [[gnu::always_inline]] static void bump_each(detail::Cell* cells, const Counter& c,
                                                 std::uint64_t n, const More&... more) {
        detail::bump(cells[c.cell_], n);
        if constexpr (sizeof...(More) > 0) bump_each(cells, more...);
    }
    Counter(Registry* r, std::size_t cell) : r_(r), cell_(cell) {}
    Registry* r_ = nullptr;
    std::size_t cell_ = 0;
};

/// A gauge series moved by deltas (each thread keeps its own sum, so a
/// connection opened on one thread may close on another).
class Gauge {
  public:
    Gauge() = default;
    void add(std::int64_t d) const;
    void inc() const { add(1); }
    void dec() const { add(-1); }

  private:
    friend class Registry;
    template <class>
    friend class Family;
    Gauge(Registry* r, std::size_t cell) : r_(r), cell_(cell) {}
    Registry* r_ = nullptr;
    std::size_t cell_ = 0;
};

/// A histogram series with the bounds of its family.
class Histogram {
  public:
    Histogram() = default;
    void observe(double v) const;

  private:
    friend class Registry;
    template <class>
    friend class Family;
    Histogram(Registry* r, std::size_t cell, const std::vector<double>* bounds)
        : r_(r), cell_(cell), bounds_(bounds) {}
    Registry* r_ = nullptr;
    std::size_t cell_ = 0;  // bounds+1 bucket cells, then count, then sum
    const std::vector<double>* bounds_ = nullptr;
};

/// A declared family; series(values) declares (or finds) one label set.
template <class Handle>
class Family {
  public:
    Family() = default;
    Handle series(std::vector<std::string> values) const;

  private:
    friend class Registry;
    Family(Registry* r, std::size_t index) : r_(r), index_(index) {}
    Registry* r_ = nullptr;
    std::size_t index_ = 0;
};

class Registry {
  public:
    Registry() = default;
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    Family<Counter> counter(std::string name, std::string help,
                            std::vector<std::string> label_names = {}) {
        return {this, declare(std::move(name), std::move(help), Type::counter,
                              std::move(label_names), {})};
    }
    Family<Gauge> gauge(std::string name, std::string help,
                        std::vector<std::string> label_names = {}) {
        return {this,
                declare(std::move(name), std::move(help), Type::gauge, std::move(label_names), {})};
    }
    /// `bounds`: the buckets' upper bounds, increasing (+Inf is implied).
    Family<Histogram> histogram(std::string name, std::string help,
                                std::vector<std::string> label_names, std::vector<double> bounds) {
        if (!std::is_sorted(bounds.begin(), bounds.end()) ||
            std::adjacent_find(bounds.begin(), bounds.end()) != bounds.end())
            throw std::invalid_argument("metrics: histogram bounds must increase");
        return {this, declare(std::move(name), std::move(help), Type::histogram,
                              std::move(label_names), std::move(bounds))};
    }

    /// Runs at every snapshot(), after the registry's own families: for
    /// values that are cheaper to read than to track (sizes of tables,
    /// another component's statistics). Register before recording.
    void collect(std::function<void(Snapshot&)> collector) {
        std::lock_guard lock(mutex_);
        collectors_.push_back(std::move(collector));
    }

    /// The merged values of every thread's shard, then the collectors'.
    /// Safe from any thread, concurrently with recording.
    Snapshot snapshot() const {
        std::vector<std::uint64_t> sum;
        std::vector<std::function<void(Snapshot&)>> collectors;
        Snapshot out;
        {
            std::lock_guard lock(mutex_);
            sum.assign(cells_, 0);
            for (const auto& s : shards_)
                for (std::size_t i = 0; i < s->size; ++i)
                    sum[i] = merge(i, sum[i], s->cells[i].load(std::memory_order_relaxed));
            for (const auto& f : families_) {
                FamilySnapshot fs{f.name, f.help, f.type, {}};
                for (const auto& s : f.series) {
                    Sample sample;
                    for (std::size_t i = 0; i < f.label_names.size(); ++i)
                        sample.labels.emplace_back(f.label_names[i], s.values[i]);
                    if (f.type == Type::counter) {
                        sample.value = static_cast<double>(sum[s.cell]);
                    } else if (f.type == Type::gauge) {
                        sample.value = static_cast<double>(static_cast<std::int64_t>(sum[s.cell]));
                    } else {
                        auto& h = sample.histogram;
                        h.bounds = f.bounds;
                        std::uint64_t running = 0;
                        for (std::size_t b = 0; b < f.bounds.size(); ++b)
                            h.buckets.push_back(running += sum[s.cell + b]);
                        h.count = running + sum[s.cell + f.bounds.size()];
                        h.sum = std::bit_cast<double>(sum[s.cell + f.bounds.size() + 1]);
                    }
                    fs.samples.push_back(std::move(sample));
                }
                out.families.push_back(std::move(fs));
            }
            collectors = collectors_;
        }
        for (auto& c : collectors)
            c(out);
        return out;
    }

  private:
    template <class>
    friend class Family;
    friend class Counter;
    friend class Gauge;
    friend class Histogram;

    struct Series {
        std::vector<std::string> values;
        std::size_t cell;
    };
    struct FamilyDef {
        std::string name, help;
        Type type;
        std::vector<std::string> label_names;
        std::vector<double> bounds;
        std::vector<Series> series;
    };

    std::size_t declare(std::string name, std::string help, Type type,
                        std::vector<std::string> label_names, std::vector<double> bounds) {
        std::lock_guard lock(mutex_);
        check_open();
        for (const auto& f : families_)
            if (f.name == name) throw std::invalid_argument("metrics: " + name + " declared twice");
        families_.push_back(FamilyDef{
            std::move(name), std::move(help), type, std::move(label_names), std::move(bounds), {}});
        return families_.size() - 1;
    }

    // The cell of a series, declared on first use of its label values.
    std::size_t series_cell(std::size_t family, std::vector<std::string> values,
                            const std::vector<double>** bounds) {
        std::lock_guard lock(mutex_);
        auto& f = families_.at(family);
        if (values.size() != f.label_names.size())
            throw std::invalid_argument("metrics: " + f.name + " takes " +
                                        std::to_string(f.label_names.size()) + " label values");
        if (bounds) *bounds = &f.bounds;
        for (const auto& s : f.series)
            if (s.values == values) return s.cell;
        check_open();
        std::size_t cell = cells_;
        std::size_t width = f.type == Type::histogram ? f.bounds.size() + 2 : 1;
        cells_ += width;
        if (f.type == Type::histogram) sum_cells_.push_back(cell + width - 1);
        f.series.push_back(Series{std::move(values), cell});
        return cell;
    }

    void check_open() const {
        if (!shards_.empty())
            throw std::logic_error("metrics: declare families and series before recording");
    }

    std::uint64_t merge(std::size_t cell, std::uint64_t a, std::uint64_t b) const {
        if (std::find(sum_cells_.begin(), sum_cells_.end(), cell) == sum_cells_.end())
            return a + b;  // counts, and gauges in two's complement
        return std::bit_cast<std::uint64_t>(std::bit_cast<double>(a) + std::bit_cast<double>(b));
    }

    // This thread's shard: one compare, inlined, when a thread records into
    // one registry (the common case); a short search otherwise.
    using Cached = detail::CachedShard;
    static inline thread_local Cached last_{};

    [[gnu::always_inline]] detail::Cell* cells() {
        if (last_.registry == id_) [[likely]]
            return last_.cells;
        return find_cells();
    }

    [[gnu::noinline]] detail::Cell* find_cells() {
        thread_local std::vector<Cached> known;
        for (const auto& k : known)
            if (k.registry == id_) {
                last_ = k;
                return k.cells;
            }
        detail::Shard* shard;
        {
            std::lock_guard lock(mutex_);
            shard = shards_.emplace_back(std::make_unique<detail::Shard>(cells_)).get();
        }
        // Ids are never reused, so entries of destroyed registries never match.
        known.push_back({id_, shard->cells.get()});
        last_ = known.back();
        return last_.cells;
    }

    const std::uint64_t id_ = detail::next_registry_id();
    mutable std::mutex mutex_;
    std::deque<FamilyDef> families_;  // stable: series handles point at bounds
    std::size_t cells_ = 0;
    std::vector<std::size_t> sum_cells_;  // histogram sums: doubles, merged as such
    std::vector<std::unique_ptr<detail::Shard>> shards_;
    std::vector<std::function<void(Snapshot&)>> collectors_;
};

inline void Counter::inc(std::uint64_t n) const {
    if (r_) detail::bump(r_->cells()[cell_], n);
}

template <class... More>
inline void Counter::inc_together(const Counter& first, std::uint64_t n, const More&... more) {
    if (first.r_) bump_each(first.r_->cells(), first, n, more...);
}

inline void Gauge::add(std::int64_t d) const {
    if (r_) detail::bump(r_->cells()[cell_], static_cast<std::uint64_t>(d));
}

inline void Histogram::observe(double v) const {
    if (!r_) return;
    auto* c = r_->cells();
    const auto& b = *bounds_;
    std::size_t i = 0;
    while (i < b.size() && v > b[i])
        ++i;
    detail::bump(c[cell_ + i], 1);
    detail::add_double(c[cell_ + b.size() + 1], v);
}

template <class Handle>
Handle Family<Handle>::series(std::vector<std::string> values) const {
    if constexpr (std::is_same_v<Handle, Histogram>) {
        const std::vector<double>* bounds = nullptr;
        auto cell = r_->series_cell(index_, std::move(values), &bounds);
        return Handle(r_, cell, bounds);
    } else {
        return Handle(r_, r_->series_cell(index_, std::move(values), nullptr));
    }
}

}  // namespace plume::metrics

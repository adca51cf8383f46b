//! The flight recorder: per-thread rings in fixed memory that keep the last seconds of runtime
//! events.
//!
//! ```text
//!  tokio hooks ─┐ tracing layer ─┐ OS sampler ─┐ allocator ─┐
//!               └────────────────┴─────────────┴────────────┴─> write() ─> this thread's Ring
//!                                      (typed events, see codec)                (16 B/record)
//!  analyzer ─> FlightRecorder::snapshot() ─> copies every ring without stopping its writer
//! ```
//!
//! Memory is bounded at install time by `total_bytes`. A tokio worker thread gets a ring of
//! `ring_bytes` (it records nearly everything), less when its runtime has more workers than
//! three quarters of `total_bytes` hold at that size, so that every worker records; any other
//! thread (blocking pool, the OS sampler, application threads) a small ring of
//! `ring_bytes / 16`, from the last quarter. Rings are allocated when a
//! thread first records, zeroed by the allocator (so pages become resident only as the ring
//! fills), and handed back to a free list when the thread exits, so a later thread of the same
//! kind reuses it. A thread that finds no room records nothing and its events are counted as
//! dropped, per kind (and the analyzer says so once, [`FlightRecorder::refused_threads`]). A
//! full ring overwrites its oldest records; snapshots report how many were lost. Nothing here
//! blocks or allocates on the hot path: a write is a thread-local read, a clock read, four
//! stores and a prefetch of the line a few records ahead (a large ring's lines are cold when
//! the writer comes back to them).

pub mod codec;
pub(crate) mod cursor;
pub mod record;
pub mod ring;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use codec::Codec;
use codec::threads::ThreadStart;
pub(crate) use record::{Kind, Record};
use ring::{Ring, RingCopy};

/// Bytes in one record.
pub const RECORD_BYTES: usize = 16;

/// Sizes of the recorder's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecorderSize {
    /// All rings together, bytes.
    pub total_bytes: usize,
    /// One thread's ring, bytes.
    pub ring_bytes: usize,
}

impl Default for RecorderSize {
    /// At most 128 MiB; 16 MiB per worker ring (1,048,576 records: about 10 s of a worker
    /// serving the demo at 2,000 requests/s on two workers, see docs/architecture.md for the
    /// formula), 1 MiB per other thread.
    fn default() -> Self {
        RecorderSize {
            total_bytes: 128 << 20,
            ring_bytes: 16 << 20,
        }
    }
}

/// The smallest worker ring the recorder shrinks rings to so that a runtime's workers fit.
const MIN_WORKER_RING_BYTES: usize = 64 << 10;

impl RecorderSize {
    /// Bytes of the ring a thread other than a tokio worker gets: a sixteenth of
    /// `ring_bytes`, at least 64 KiB.
    pub fn other_ring_bytes(&self) -> usize {
        (self.ring_bytes / 16).max(64 << 10).min(self.ring_bytes)
    }

    /// Bytes of all worker rings together: three quarters of `total_bytes` (other threads'
    /// rings take the rest, [`Self::others_share`], so a blocking pool that records cannot
    /// crowd the workers out).
    pub fn worker_share(&self) -> usize {
        self.total_bytes / 4 * 3
    }

    /// Bytes of all other threads' rings together: what [`Self::worker_share`] leaves.
    pub fn others_share(&self) -> usize {
        self.total_bytes - self.worker_share()
    }

    /// Bytes of the ring a worker of a runtime with `workers` workers gets: `ring_bytes`, or
    /// the largest power of two at which every worker's ring fits in [`Self::worker_share`]
    /// (at least 64 KiB, and never more than `ring_bytes`). With the defaults (128 MiB,
    /// 16 MiB rings) up to six workers get 16 MiB, 12 get 8 MiB, 64 get 1 MiB.
    pub fn worker_ring_bytes(&self, workers: usize) -> usize {
        let fair = self.worker_share() / workers.max(1);
        let fitting = fair.checked_ilog2().map_or(0, |bits| 1 << bits);
        self.ring_bytes.min(fitting.max(MIN_WORKER_RING_BYTES))
    }
}

/// Who owned a ring, from which record on.
#[derive(Debug, Clone, Default)]
pub struct Owner {
    pub tid: u64,
    /// The Rust thread name, if any (spans report it as `thread.name`).
    pub name: Option<String>,
    /// tokio worker index + 1, 0 when the thread is not a known worker.
    pub worker: u64,
    pub since_seq: u64,
}

#[derive(Debug)]
struct RingSlot {
    index: usize,
    /// A worker's ring (see [`RecorderSize::worker_ring_bytes`]).
    worker: bool,
    ring: Ring,
    /// Owners in order; the last is current. Written only when a thread takes the ring.
    owners: Mutex<Vec<Owner>>,
    /// Next span key; only the owning thread touches it.
    next_key: AtomicU64,
}

/// The process-wide recorder. Install once with [`FlightRecorder::install`].
#[derive(Debug)]
pub struct FlightRecorder {
    size: RecorderSize,
    slots: Mutex<Vec<&'static RingSlot>>,
    free: Mutex<Vec<&'static RingSlot>>,
    dropped: [AtomicU64; Kind::COUNT],
    /// Threads refused a ring so far.
    refused: AtomicU64,
}

static RECORDER: OnceLock<FlightRecorder> = OnceLock::new();

/// What one thread's ring held at snapshot time.
#[derive(Debug, Clone)]
pub struct ThreadRecords {
    pub ring: usize,
    pub owners: Vec<Owner>,
    pub copy: RingCopy,
}

impl ThreadRecords {
    /// The records, oldest first.
    pub fn records(&self) -> &[Record] {
        self.copy.records()
    }

    /// Number of the first record since the ring was created.
    pub fn first_seq(&self) -> u64 {
        self.copy.first_seq()
    }

    /// Records of the window asked for that the ring no longer held.
    pub fn lost(&self) -> u64 {
        self.copy.lost()
    }
}

/// What the recorder lost so far ([`FlightRecorder::counters`]).
#[derive(Debug, Clone, Default)]
pub struct RecorderCounters {
    /// Records overwritten in full rings since they were created.
    pub overwritten: u64,
    /// Records not written because their thread had no ring, per kind.
    pub dropped: Vec<(Kind, u64)>,
}

/// A copy of every ring.
#[derive(Debug, Clone, Default)]
pub struct RecorderSnapshot {
    /// Each thread's records, one entry per ring.
    pub threads: Vec<ThreadRecords>,
    /// Events dropped because their thread had no ring, per kind.
    pub dropped: Vec<(Kind, u64)>,
    /// Records overwritten in full rings since they were created (what the recorder no
    /// longer holds). Not per kind: telling the kind would mean reading each slot before
    /// overwriting it, a cache miss on the request path.
    pub overwritten: u64,
}

impl RecorderSnapshot {
    /// Records overwritten or dropped in total.
    pub fn lost(&self) -> u64 {
        self.threads.iter().map(ThreadRecords::lost).sum::<u64>()
            + self.dropped.iter().map(|(_, n)| n).sum::<u64>()
    }
}

impl FlightRecorder {
    /// Installs the process-wide recorder. A second call keeps the first size and returns it.
    pub fn install(size: RecorderSize) -> &'static FlightRecorder {
        RECORDER.get_or_init(|| FlightRecorder {
            size,
            slots: Mutex::new(Vec::new()),
            free: Mutex::new(Vec::new()),
            dropped: std::array::from_fn(|_| AtomicU64::new(0)),
            refused: AtomicU64::new(0),
        })
    }

    /// The installed recorder, if any.
    pub fn get() -> Option<&'static FlightRecorder> {
        RECORDER.get()
    }

    /// The sizes it was installed with.
    pub fn size(&self) -> RecorderSize {
        self.size
    }

    fn acquire(&'static self) -> Option<&'static RingSlot> {
        let worker_index = tokio::runtime::worker_index();
        let is_worker = worker_index.is_some();
        let recycled = {
            let mut free = self.free.lock().ok()?;
            free.iter()
                .position(|s| s.worker == is_worker)
                .map(|i| free.swap_remove(i))
        };
        let slot = match recycled {
            Some(slot) => slot,
            None => {
                let mut slots = self.slots.lock().ok()?;
                let (bytes, limit) = if is_worker {
                    let workers = tokio::runtime::Handle::try_current()
                        .map_or(1, |h| h.metrics().num_workers());
                    (
                        self.size.worker_ring_bytes(workers),
                        self.size.worker_share(),
                    )
                } else {
                    (self.size.other_ring_bytes(), self.size.others_share())
                };
                let used: usize = slots
                    .iter()
                    .filter(|s| s.worker == is_worker)
                    .map(|s| s.ring.capacity() * RECORD_BYTES)
                    .sum();
                if used + bytes > limit {
                    return None;
                }
                let slot: &'static RingSlot = Box::leak(Box::new(RingSlot {
                    index: slots.len(),
                    worker: is_worker,
                    ring: Ring::new(bytes / RECORD_BYTES),
                    owners: Mutex::new(Vec::new()),
                    next_key: AtomicU64::new(1),
                }));
                slots.push(slot);
                slot
            }
        };
        let tid = current_tid();
        let worker = worker_index.map_or(0, |w| w as u64 + 1);
        if let Ok(mut owners) = slot.owners.lock() {
            owners.push(Owner {
                tid,
                name: std::thread::current().name().map(str::to_owned),
                worker,
                since_seq: slot.ring.written(),
            });
            // Owners whose records have all been overwritten are of no further use.
            let oldest_live = slot
                .ring
                .written()
                .saturating_sub(slot.ring.capacity() as u64);
            while owners.len() > 1 && owners[1].since_seq <= oldest_live {
                owners.remove(0);
            }
        }
        let start = ThreadStart {
            tid,
            worker: worker_index,
        };
        start.encode(crate::clock::now(), &slot.ring);
        Some(slot)
    }

    fn release(&self, slot: &'static RingSlot) {
        if let Ok(mut free) = self.free.lock() {
            free.push(slot);
        }
    }

    /// The shortest history any ring holds at its current rate, in clock ticks (see
    /// [`Ring::reach`]): about how long a record written at `now` survives. `None` while every
    /// ring is empty.
    pub fn reach(&self, now: u64) -> Option<u64> {
        let slots = self.slots.lock().ok()?;
        slots.iter().filter_map(|slot| slot.ring.reach(now)).min()
    }

    /// The recorder's loss counters, without copying any ring: records overwritten in full
    /// rings, and records dropped (by kind) because their thread had no ring.
    pub fn counters(&self) -> RecorderCounters {
        let overwritten = self
            .slots
            .lock()
            .map(|slots| slots.iter().map(|s| s.ring.overwritten()).sum())
            .unwrap_or(0);
        RecorderCounters {
            overwritten,
            dropped: self.dropped_by_kind(),
        }
    }

    /// Records dropped so far, per kind (kinds with none left out).
    fn dropped_by_kind(&self) -> Vec<(Kind, u64)> {
        Kind::ALL
            .into_iter()
            .map(|k| (k, self.dropped[k as usize].load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Copies every ring. Writers keep writing meanwhile.
    pub fn snapshot(&self) -> RecorderSnapshot {
        self.snapshot_since(0, RecorderSnapshot::default())
    }

    /// Copies what every ring holds from clock tick `ts` on (the analyzer's window), so a
    /// busy ring is not copied whole for every batch. `lost` then counts only records of that
    /// window that were overwritten (at least one when the window reaches further back than
    /// anything held: see [`Ring::window_from`]). `earlier` (a previous snapshot, or an empty one) is
    /// brought up to date rather than copied anew: each ring's copy drops what precedes the
    /// window and appends what was written since, so a reader whose windows overlap copies
    /// each record about once.
    pub fn snapshot_since(&self, ts: u64, earlier: RecorderSnapshot) -> RecorderSnapshot {
        let slots: Vec<&'static RingSlot> =
            self.slots.lock().map(|s| s.clone()).unwrap_or_default();
        // Rings are never removed, so an earlier snapshot's threads are the first rings, in order.
        let mut copies = earlier.threads.into_iter().map(|t| t.copy);
        let threads = slots
            .iter()
            .map(|slot| {
                let mut copy = copies.next().unwrap_or_default();
                // The copy may still hold records of the window the ring has overwritten.
                let from = if ts == 0 {
                    0
                } else {
                    slot.ring.window_from(ts, &copy)
                };
                slot.ring.refresh(from, &mut copy);
                ThreadRecords {
                    ring: slot.index,
                    owners: slot.owners.lock().map(|o| o.clone()).unwrap_or_default(),
                    copy,
                }
            })
            .collect();
        let dropped = self.dropped_by_kind();
        let overwritten = slots.iter().map(|s| s.ring.overwritten()).sum();
        RecorderSnapshot {
            threads,
            dropped,
            overwritten,
        }
    }

    /// The threads that took the `i`th ring of [`rings`](Self::rings), in order (the last
    /// owns it now).
    pub(crate) fn owners(&self, i: usize) -> Vec<Owner> {
        let slot = self.slots.lock().ok().and_then(|s| s.get(i).copied());
        slot.and_then(|s| s.owners.lock().ok().map(|o| o.clone()))
            .unwrap_or_default()
    }

    /// Every ring taken so far, in the order they were created (rings are never removed, so a
    /// later call returns these first): for a reader that keeps its own place in each.
    pub(crate) fn rings(&self) -> Vec<&'static Ring> {
        self.slots
            .lock()
            .map(|slots| slots.iter().map(|s| &s.ring).collect())
            .unwrap_or_default()
    }

    /// The ring OS thread `tid` writes to now, if it took one.
    pub(crate) fn ring_of(&self, tid: u64) -> Option<&'static Ring> {
        let slots = self.slots.lock().ok()?;
        slots
            .iter()
            .find(|s| {
                s.owners
                    .lock()
                    .is_ok_and(|o| o.last().is_some_and(|o| o.tid == tid))
            })
            .map(|s| &s.ring)
    }

    /// Threads refused a ring so far (no room left in `total_bytes`): their events are
    /// dropped, and spans they start are not recorded.
    pub fn refused_threads(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Rings currently allocated.
    pub fn rings_in_use(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }
}

/// The calling thread's ring. `Drop` hands it back to the recorder when the thread exits.
struct Local {
    slot: Cell<Option<&'static RingSlot>>,
    /// Set once this thread was refused a ring, so it does not retry on every event.
    refused: Cell<bool>,
}

impl Drop for Local {
    fn drop(&mut self) {
        if let (Some(slot), Some(rec)) = (self.slot.take(), FlightRecorder::get()) {
            rec.release(slot);
        }
    }
}

thread_local! {
    static LOCAL: Local = const { Local { slot: Cell::new(None), refused: Cell::new(false) } };
}

#[inline]
fn with_ring(kind: Kind, f: impl FnOnce(&'static RingSlot)) {
    let _ = LOCAL.try_with(|local| match local.slot.get() {
        Some(slot) => f(slot),
        None => {
            let Some(rec) = FlightRecorder::get() else {
                return;
            };
            if local.refused.get() {
                rec.dropped[kind as usize].fetch_add(1, Ordering::Relaxed);
                return;
            }
            match rec.acquire() {
                Some(slot) => {
                    local.slot.set(Some(slot));
                    f(slot)
                }
                None => {
                    local.refused.set(true);
                    rec.refused.fetch_add(1, Ordering::Relaxed);
                    rec.dropped[kind as usize].fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
}

/// Writes `event` to the calling thread's ring, stamped now.
#[inline]
pub fn write<'a, E: Codec<'a>>(event: &E) {
    write_at(crate::clock::now(), event);
}

/// Writes `event` stamped `ts` (clock ticks): for a caller that needs the time itself too (a
/// clock read is most of a record's cost).
#[inline]
pub(crate) fn write_at<'a, E: Codec<'a>>(ts: u64, event: &E) {
    with_ring(E::KIND, |slot| event.encode(ts, &slot.ring));
}

/// A fresh span key, unique in the process: ring index in the high bits, a per-ring counter
/// below. 0 means "no span" and is never returned. Returns 0 when the thread cannot record.
#[inline]
pub fn next_span_key() -> u64 {
    let mut key = 0;
    with_ring(Kind::SpanNew, |slot| {
        let n = slot.next_key.load(Ordering::Relaxed);
        slot.next_key.store(n + 1, Ordering::Relaxed);
        key = ((slot.index as u64 + 1) << 40) | (n & ((1 << 40) - 1));
    });
    key
}

/// The OS thread id of the caller.
pub(crate) fn current_tid() -> u64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as u64 }
}

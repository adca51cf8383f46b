//! The thread that makes the spotlight's full analyses (`spotlight`). A full decode of one
//! span's window and its analysis take ~50 ns a record: 7–8 ms of CPU time for a 30 ms span
//! on a saturated core, longer in wall time than the light batches behind it can wait
//! while the rings wrap. So the analyzer copies the window's records and sends them here, and
//! the breakdown (with the artifact's bytes) comes back for it to attach and export.
//!
//! The thread starts with the first job, runs as a background thread (`crate::background`)
//! like the analyzer, and ends when the analyzer drops its end. At most [`QUEUE`] jobs wait
//! (each holds its window's records, ~3 MB for a 30 ms span at 4 M records/s).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use super::artifacts::timeline;
use crate::analysis::{Breakdown, Target, analyze_with, decode_between};
use crate::clock::Calibration;
use crate::clock::thread_cpu;
use crate::recorder::RecorderSnapshot;

/// Jobs waiting at most, besides the one running.
pub(super) const QUEUE: usize = 2;

/// One span's full analysis to make.
#[derive(Debug)]
pub(super) struct Job {
    /// The analyzer's number for it, given back in [`Done`].
    pub id: u64,
    /// The window's records ([`crate::analysis::copy_between`]).
    pub records: RecorderSnapshot,
    pub cal: Calibration,
    /// The window, Unix ns.
    pub from: u64,
    pub to: u64,
    pub target: Target,
    /// Draw its timeline too, for this trace.
    pub artifact_of_trace: Option<u128>,
}

/// A job's outcome.
#[derive(Debug)]
pub(super) struct Done {
    pub id: u64,
    /// The breakdown and, when asked for, the timeline's bytes; `None` where the analysis
    /// failed (a bug in it costs the breakdown, never the thread).
    pub analysis: Option<(Breakdown, Option<Vec<u8>>)>,
    /// The CPU time it took.
    pub cpu: Duration,
}

/// The analyzer's end of the thread.
#[derive(Debug, Default)]
pub(super) struct FullThread {
    /// `None` until the first job (and after the thread could not start).
    jobs: Option<SyncSender<Job>>,
    done: Option<Receiver<Done>>,
    /// Jobs sent and not yet given back.
    outstanding: usize,
    /// The thread could not start: no more tries.
    unavailable: bool,
}

impl FullThread {
    /// How many more jobs it takes now.
    pub(super) fn room(&self) -> usize {
        (QUEUE + 1).saturating_sub(self.outstanding)
    }

    /// Sends `job`; false when the thread is busy or cannot start.
    pub(super) fn send(&mut self, job: Job) -> bool {
        if self.jobs.is_none() && (self.unavailable || !self.start()) {
            return false;
        }
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|tx| tx.try_send(job).is_ok());
        self.outstanding += usize::from(sent);
        sent
    }

    /// What finished, without waiting; with `wait`, waits up to it for every job sent.
    pub(super) fn finished(&mut self, wait: Option<Duration>) -> Vec<Done> {
        let mut out = Vec::new();
        let Some(rx) = &self.done else {
            return out;
        };
        let deadline = wait.map(|w| Instant::now() + w);
        while self.outstanding > 0 {
            let next = match deadline {
                None => rx.try_recv().ok(),
                Some(d) => match rx.recv_timeout(d.saturating_duration_since(Instant::now())) {
                    Ok(done) => Some(done),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => {
                        self.outstanding = 0;
                        None
                    }
                },
            };
            let Some(done) = next else { break };
            self.outstanding -= 1;
            out.push(done);
        }
        out
    }

    fn start(&mut self) -> bool {
        let (jobs_tx, jobs_rx) = sync_channel::<Job>(QUEUE);
        let (done_tx, done_rx) = sync_channel::<Done>(QUEUE + 1);
        let spawned = std::thread::Builder::new()
            .name("granular-full".into())
            .spawn(move || {
                crate::background::yield_to_the_application();
                for job in jobs_rx {
                    if done_tx.send(run(job)).is_err() {
                        break;
                    }
                }
            });
        match spawned {
            Ok(_) => {
                self.jobs = Some(jobs_tx);
                self.done = Some(done_rx);
                true
            }
            Err(e) => {
                self.unavailable = true;
                tracing::warn!(
                    "granular: cannot start the full-analysis thread ({e}); busy services' \
                     violating spans get light breakdowns only"
                );
                false
            }
        }
    }
}

/// Makes one job's analysis.
fn run(job: Job) -> Done {
    let cpu = thread_cpu().unwrap_or_default();
    let analysis = catch_unwind(AssertUnwindSafe(|| {
        let d = decode_between(&job.records, &job.cal, job.from, job.to);
        let b = analyze_with(&d, &job.target, false);
        let bytes = job
            .artifact_of_trace
            .map(|trace| timeline(&d, &b, trace, job.target.otel_span_id));
        (b, bytes)
    }))
    .ok();
    Done {
        id: job.id,
        analysis,
        cpu: thread_cpu().unwrap_or_default().saturating_sub(cpu),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: u64) -> Job {
        Job {
            id,
            records: RecorderSnapshot::default(),
            cal: Calibration::identity(0),
            from: 1_000,
            to: 2_000,
            target: Target {
                otel_span_id: 7,
                name: "GET /a".into(),
                start: 1_000,
                end: 2_000,
            },
            artifact_of_trace: Some(1),
        }
    }

    /// Jobs come back by their number, with a breakdown (here of a span the records do not
    /// hold: data loss) and the timeline asked for; the thread takes [`QUEUE`] + 1 at most.
    #[test]
    fn jobs_come_back_analyzed_and_the_room_is_bounded() {
        let mut t = FullThread::default();
        assert_eq!(t.room(), QUEUE + 1);
        assert!(t.finished(None).is_empty(), "nothing sent, no thread");
        assert!(t.send(job(1)), "the thread starts");
        assert!(t.send(job(2)), "room");
        let mut done = t.finished(Some(Duration::from_secs(10)));
        done.sort_by_key(|d| d.id);
        assert_eq!(done.iter().map(|d| d.id).collect::<Vec<_>>(), [1, 2]);
        let (b, bytes) = done[0].analysis.as_ref().expect("analyzed");
        assert!(b.data_loss, "the span is not in the records");
        assert!(
            bytes.as_ref().is_some_and(|b| !b.is_empty()),
            "the timeline"
        );
        assert_eq!(t.room(), QUEUE + 1, "all given back");
    }
}

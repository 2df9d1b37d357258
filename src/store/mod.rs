//! The recording: one SQLite file per session (WAL, a commit at least once a
//! second, fsync'd), append-only while recording and readable while written.
//! Samples are stored compactly (see `codec`), other events as JSON rows.

pub mod codec;
pub mod csv;
#[cfg(test)]
mod damage_tests;
mod reader;
mod recorder;

pub use reader::{NotARecording, Reader};
pub use recorder::{Recorder, refuse_existing};

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::event::{Nanos, SeriesKind};

pub use crate::header::FORMAT_VERSION;
/// A keyframe every this many sample records bounds how far a seek decodes.
pub(crate) const KEYFRAME_EVERY: u64 = 64;
pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// Events queued for the recorder thread before producers wait for it.
pub(crate) const QUEUE_DEPTH: usize = 16_384;
/// Time read from a recording per pass when all of it is read.
pub(crate) const READ_SLICE: Nanos = 600 * 1_000_000_000;
/// How late a sample may be recorded after later-stamped ones (a guest's,
/// stamped on its clock, arriving behind the host's).
pub(crate) const LATE_ARRIVAL: Nanos = 10 * 1_000_000_000;
/// How many times a salvaging reader jumps over a damaged stretch of a
/// table (1, 2, 4, ... rows) before it gives the rest of it up.
pub(crate) const MAX_SKIPS: u32 = 20;

pub(crate) const SCHEMA: &str = "
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE series(id INTEGER PRIMARY KEY, source TEXT NOT NULL, metric TEXT NOT NULL,
                    unit TEXT NOT NULL, kind TEXT NOT NULL);
CREATE TABLE ticks(seq INTEGER PRIMARY KEY, t INTEGER NOT NULL, keyframe INTEGER NOT NULL,
                   data BLOB NOT NULL);
CREATE INDEX ticks_t ON ticks(t);
CREATE TABLE events(seq INTEGER PRIMARY KEY, t INTEGER NOT NULL, kind TEXT NOT NULL,
                    body TEXT NOT NULL);
CREATE INDEX events_t ON events(t);
";

/// The writer's lock file beside a recording, `name.vmb-writer`. It is a
/// file of its own: opening and closing the recording itself would drop
/// this process's SQLite (fcntl) locks on it.
fn writer_lock_path(path: &Path) -> PathBuf {
    sidecar(path, "-writer")
}

/// Takes the writer's lock (an exclusive flock on `name.vmb-writer`), held
/// until the returned guard drops, which removes the file: a replay that
/// finds no such file, or finds it unlocked, has no writer to wait for.
pub(crate) fn hold_writer_lock(path: &Path) -> std::io::Result<WriterLock> {
    use std::os::fd::AsRawFd;
    let lock = writer_lock_path(path);
    let file = std::fs::File::create(&lock)?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(WriterLock {
        path: lock,
        _file: file,
    })
}

/// A recorder's hold on its recording; the lock file goes when it drops.
pub(crate) struct WriterLock {
    path: PathBuf,
    _file: std::fs::File,
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether a replayed recording is still being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Its session ended and wrote so: nothing more will come.
    Finished,
    /// A vmbench holds it open and is still writing: replay follows it.
    Writing,
    /// Nobody holds it open and it has no end: its writer was killed or
    /// crashed, and the recording stops where it stopped.
    Gone,
}

/// Whether a vmbench still holds the recording open for writing. A writer
/// that was killed or crashed holds nothing: the kernel let go of its lock.
pub fn is_being_written(path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::File::open(writer_lock_path(path)) else {
        return false;
    };
    // SAFETY: flock on a descriptor this function owns; a shared lock
    // taken here is let go when the file closes at the end of the call.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0;
    !locked
}

/// `name.vmb-wal` and the like, beside the recording.
pub(crate) fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// SQLite integers are signed; "until the end" is passed as u64::MAX.
pub(crate) fn sql_time(t: Nanos) -> i64 {
    t.min(i64::MAX as Nanos) as i64
}

pub(crate) fn kind_name(kind: SeriesKind) -> &'static str {
    match kind {
        SeriesKind::Counter => "counter",
        SeriesKind::Gauge => "gauge",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Sample, SeriesDef};
    use crate::model::tests::{fixture_events, test_header};

    fn samples(range: std::ops::Range<u64>) -> Vec<Sample> {
        range
            .map(|i| Sample {
                t: i * 10_000_000,
                values: vec![(0, i * 7), (1, 1_000_000 - i), (2, i * i)],
            })
            .collect()
    }

    fn defs() -> Vec<Event> {
        (0..3)
            .map(|id| {
                Event::SeriesDefined(SeriesDef {
                    id,
                    source: "host".into(),
                    metric: format!("m{id}"),
                    unit: "ticks".into(),
                    kind: SeriesKind::Counter,
                })
            })
            .collect()
    }

    #[test]
    fn a_recording_reads_back_what_was_written_and_seeks_by_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.vmb");
        let recorder = Recorder::create(&path, &test_header()).expect("create");
        let written = samples(0..300);
        for e in defs().into_iter().chain(fixture_events("two_copies.jsonl")) {
            recorder.record(e).expect("record");
        }
        for s in &written {
            recorder.record(Event::Sample(s.clone())).expect("record");
        }
        assert!(is_being_written(&path), "its writer holds it");
        recorder.close().expect("close");
        for suffix in ["-wal", "-writer"] {
            assert!(
                !sidecar(&path, suffix).exists(),
                "a closed recording is one file, but {suffix} is left"
            );
        }
        assert!(!is_being_written(&path));
        let reader = Reader::open(&path).expect("open");
        assert_eq!(reader.header, test_header());
        assert_eq!(reader.series.len(), 3);
        assert_eq!(reader.samples(0, u64::MAX).expect("samples"), written);
        // A seek lands between keyframes and still decodes exactly.
        assert_eq!(
            reader.samples(1_005_000_000, 1_500_000_000).expect("seek"),
            written[101..150].to_vec()
        );
        assert_eq!(
            reader.events(0, u64::MAX).expect("events"),
            fixture_events("two_copies.jsonl")
        );
        assert_eq!(reader.end().expect("end"), 5_300_000_000);
    }

    #[test]
    fn a_torn_tail_loses_only_the_last_unfinished_flush() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("live.vmb");
        let recorder = Recorder::create(&path, &test_header()).expect("create");
        for e in defs() {
            recorder.record(e).expect("record");
        }
        let first = samples(0..200);
        for s in &first {
            recorder.record(Event::Sample(s.clone())).expect("record");
        }
        std::thread::sleep(FLUSH_EVERY * 3);
        for s in samples(200..260) {
            recorder.record(Event::Sample(s)).expect("record");
        }
        std::thread::sleep(FLUSH_EVERY * 3);
        // What a crash leaves: the database and its log, the log's end torn.
        let crashed = dir.path().join("crashed.vmb");
        std::fs::copy(&path, &crashed).expect("copy db");
        let wal =
            std::fs::read(format!("{}-wal", path.display())).expect("the live recording has a WAL");
        std::fs::write(
            format!("{}-wal", crashed.display()),
            &wal[..wal.len() - 1000],
        )
        .expect("torn wal");
        let reader = Reader::open(&crashed).expect("a torn recording opens");
        let read = reader.samples(0, u64::MAX).expect("samples");
        // The second batch may have been committed in more than one flush
        // (on a busy machine the recorder's half-second comes mid-batch):
        // what is read is every sample up to some flush, never less than
        // the first batch, never the torn last one, and nothing garbled.
        let written = samples(0..260);
        assert!(
            read.len() >= first.len() && read.len() < written.len(),
            "{} samples read",
            read.len()
        );
        assert_eq!(
            read[..],
            written[..read.len()],
            "a prefix of what was written"
        );
        recorder.close().expect("close");
    }

    /// A guest's sample, stamped on its clock, can be written after a later
    /// host sample; reading gives time order, across a read slice's end too,
    /// and decodes every delta against the record written before it.
    #[test]
    fn samples_written_out_of_time_order_are_read_in_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("late.vmb");
        let recorder = Recorder::create(&path, &test_header()).expect("create");
        for e in defs() {
            recorder.record(e).expect("record");
        }
        let ms = 1_000_000u64;
        let slice_end = READ_SLICE;
        // (t, value) in the order written: each third one arrives 30 ms late,
        // one of them just across the first read slice's end.
        let mut written = Vec::new();
        for i in 0..300u64 {
            let t = slice_end - 150 * 100 * ms + i * 100 * ms;
            written.push(t);
        }
        // Chunks start at index 1, so that index 149 (just before the slice
        // end at 150) arrives late, after 150.
        recorder
            .record(Event::Sample(Sample {
                t: written[0],
                values: vec![(0, written[0] / ms), (1, 7), (2, written[0] % 977)],
            }))
            .expect("record");
        assert_eq!(written[150], slice_end);
        for chunk in written[1..].chunks(3) {
            if let [a, b, c] = chunk {
                for t in [*a, *c, *b - 30 * ms] {
                    recorder
                        .record(Event::Sample(Sample {
                            t,
                            values: vec![(0, t / ms), (1, 7), (2, t % 977)],
                        }))
                        .expect("record");
                }
            }
        }
        recorder.close().expect("close");
        let reader = Reader::open(&path).expect("open");
        let mut times = Vec::new();
        reader
            .for_each_event(|e| {
                if let Event::Sample(s) = e {
                    // The deltas decoded right: the values are the stamp's.
                    assert_eq!(s.values[0], (0, s.t / ms), "at {}", s.t);
                    times.push(s.t);
                }
                Ok(())
            })
            .expect("read");
        // 1 + 99 chunks of 3 (the last two samples form no whole chunk).
        assert_eq!(times.len(), 298);
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "out of order");
    }

    #[test]
    fn what_is_not_a_recording_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.vmb");
        std::fs::write(&path, "just text").expect("write");
        let err = Reader::open(&path).err().expect("refused").to_string();
        assert!(err.contains("x.vmb"), "{err}");
    }
}

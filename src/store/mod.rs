//! The recording: one SQLite file per session (WAL, a commit at least once a
//! second, fsync'd), append-only while recording and readable while written.
//! Samples are stored compactly (see `codec`), other events as JSON rows.

pub mod codec;
pub mod csv;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::event::{Event, Nanos, Sample, SeriesDef, SeriesKind};
use crate::plan::PlannedPhase;
use codec::DeltaState;

pub const FORMAT_VERSION: u32 = 1;
/// A keyframe every this many sample records bounds how far a seek decodes.
const KEYFRAME_EVERY: u64 = 64;
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// Events queued for the recorder thread before producers wait for it.
const QUEUE_DEPTH: usize = 16_384;
/// Time read from a recording per pass when all of it is read.
const READ_SLICE: Nanos = 600 * 1_000_000_000;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct HostSpecs {
    pub hostname: String,
    pub os: String,
    pub kernel: String,
    pub arch: String,
    pub cpu_model: String,
    pub logical_cores: usize,
    pub physical_cores: Option<usize>,
    pub memory_bytes: u64,
    /// USER_HZ, the unit of every `ticks` series.
    pub clock_ticks_per_sec: u64,
}

impl HostSpecs {
    pub fn of_this_host() -> Self {
        let unknown =
            |r: Result<String, _>| r.unwrap_or_else(|_: sysinfo::Error| "unknown".to_string());
        let mut system = sysinfo::System::new().ok();
        if let Some(s) = system.as_mut() {
            s.refresh_memory();
            s.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
        }
        HostSpecs {
            hostname: unknown(sysinfo::System::host_name()),
            os: unknown(sysinfo::System::long_os_version()),
            kernel: unknown(sysinfo::System::kernel_long_version()),
            arch: sysinfo::System::cpu_arch(),
            cpu_model: system
                .as_ref()
                .and_then(|s| s.cpus().first().map(|c| c.brand().trim().to_string()))
                .unwrap_or_else(|| "unknown".into()),
            logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            physical_cores: sysinfo::System::physical_core_count().ok(),
            memory_bytes: system.as_ref().map_or(0, |s| s.total_memory()),
            clock_ticks_per_sec: procfs::ticks_per_second(),
        }
    }
}

/// What a recording says about itself.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Header {
    pub format_version: u32,
    pub vmbench_version: String,
    /// Wall-clock start, RFC 3339 UTC; session times are offsets from it.
    pub started_at: String,
    pub started_unix_ns: u64,
    pub host: HostSpecs,
    pub plan_name: String,
    pub plan_origin: String,
    pub plan_source: String,
    pub interval_ns: Nanos,
    pub schedule: Vec<PlannedPhase>,
}

impl Header {
    /// The header of a session of `plan` on `host` started at
    /// `started_unix_ns`, running `schedule`.
    pub fn new(
        plan: &crate::plan::LoadedPlan,
        host: HostSpecs,
        started_unix_ns: u64,
        schedule: Vec<PlannedPhase>,
    ) -> Self {
        Header {
            format_version: FORMAT_VERSION,
            vmbench_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: humantime::format_rfc3339_nanos(
                std::time::UNIX_EPOCH + Duration::from_nanos(started_unix_ns),
            )
            .to_string(),
            started_unix_ns,
            host,
            plan_name: plan.plan.name.clone(),
            plan_origin: plan.origin.clone(),
            plan_source: plan.source.clone(),
            interval_ns: plan.plan.interval.get().as_nanos() as Nanos,
            schedule,
        }
    }
}

const SCHEMA: &str = "
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

enum Command {
    Event(Box<Event>),
    Close,
}

/// The recorder: a consumer of events on its own thread, behind a bounded queue.
pub struct Recorder {
    path: PathBuf,
    tx: SyncSender<Command>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Recorder {
    pub fn create(path: &Path, header: &Header) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        if path.exists() {
            bail!(
                "{} exists already; a recording is never overwritten",
                path.display()
            );
        }
        let conn =
            Connection::open(path).with_context(|| format!("creating {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: each once-a-second commit is fsync'd, so power loss keeps it too.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('format_version', ?1), ('header', ?2)",
            params![FORMAT_VERSION.to_string(), serde_json::to_string(header)?],
        )?;
        let (tx, rx) = sync_channel(QUEUE_DEPTH);
        let shown = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || write_loop(conn, rx).with_context(|| format!("recording to {shown}")))?;
        Ok(Recorder {
            path: path.to_path_buf(),
            tx,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues an event. An error means the recorder has stopped; `close` says why.
    pub fn record(&self, event: Event) -> Result<()> {
        self.tx
            .send(Command::Event(Box::new(event)))
            .map_err(|_| anyhow::anyhow!("the recorder of {} has stopped", self.path.display()))
    }

    /// Writes what is queued, commits and closes the file.
    pub fn close(mut self) -> Result<()> {
        let _ = self.tx.send(Command::Close);
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| anyhow::anyhow!("the recorder thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.tx.send(Command::Close);
        let _ = self.join();
    }
}

struct WriteState {
    delta: DeltaState,
    records_since_keyframe: u64,
    blob: Vec<u8>,
}

fn write_loop(mut conn: Connection, rx: Receiver<Command>) -> Result<()> {
    let mut state = WriteState {
        delta: DeltaState::default(),
        records_since_keyframe: KEYFRAME_EVERY,
        blob: Vec::with_capacity(4096),
    };
    loop {
        let deadline = Instant::now() + FLUSH_EVERY;
        let tx = conn.transaction()?;
        let mut closing = false;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Command::Event(event)) => write_event(&tx, &mut state, &event)?,
                Ok(Command::Close) | Err(RecvTimeoutError::Disconnected) => {
                    closing = true;
                    break;
                }
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
        tx.commit()?;
        if closing {
            // Folds the WAL back so that a closed recording is one file.
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
            return conn.close().map_err(|(_, e)| e.into());
        }
    }
}

fn write_event(
    tx: &rusqlite::Transaction<'_>,
    state: &mut WriteState,
    event: &Event,
) -> Result<()> {
    match event {
        Event::SeriesDefined(def) => {
            tx.prepare_cached(
                "INSERT INTO series(id, source, metric, unit, kind) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                def.id,
                def.source,
                def.metric,
                def.unit,
                kind_name(def.kind)
            ])?;
        }
        Event::Sample(sample) => {
            let keyframe = state.records_since_keyframe >= KEYFRAME_EVERY;
            if keyframe {
                state.delta.reset();
                state.records_since_keyframe = 0;
            }
            state.records_since_keyframe += 1;
            state.delta.encode(&sample.values, &mut state.blob);
            tx.prepare_cached("INSERT INTO ticks(t, keyframe, data) VALUES (?1, ?2, ?3)")?
                .execute(params![sample.t as i64, keyframe, state.blob])?;
        }
        other => {
            let body = serde_json::to_string(other)?;
            let t = other.t().unwrap_or(0);
            tx.prepare_cached("INSERT INTO events(t, kind, body) VALUES (?1, ?2, ?3)")?
                .execute(params![t as i64, other.kind(), body])?;
        }
    }
    Ok(())
}

/// SQLite integers are signed; "until the end" is passed as u64::MAX.
fn sql_time(t: Nanos) -> i64 {
    t.min(i64::MAX as Nanos) as i64
}

fn kind_name(kind: SeriesKind) -> &'static str {
    match kind {
        SeriesKind::Counter => "counter",
        SeriesKind::Gauge => "gauge",
    }
}

/// A recording opened for reading, possibly while it is still being written.
pub struct Reader {
    conn: Connection,
    pub header: Header,
    pub series: Vec<SeriesDef>,
}

impl Reader {
    pub fn open(path: &Path) -> Result<Self> {
        if !path.exists() {
            bail!("{}: no such recording", path.display());
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening {}", path.display()))?;
        let version: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'format_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .with_context(|| format!("{} is not a vmbench recording", path.display()))?;
        match version.as_deref().map(str::parse::<u32>) {
            Some(Ok(FORMAT_VERSION)) => {}
            Some(Ok(v)) => bail!(
                "{} has format version {v}; this vmbench reads {FORMAT_VERSION}",
                path.display()
            ),
            _ => bail!(
                "{} is not a vmbench recording (no format version)",
                path.display()
            ),
        }
        let header: String =
            conn.query_row("SELECT value FROM meta WHERE key = 'header'", [], |r| {
                r.get(0)
            })?;
        let header: Header = serde_json::from_str(&header)
            .with_context(|| format!("the header of {}", path.display()))?;
        let mut reader = Reader {
            conn,
            header,
            series: Vec::new(),
        };
        reader.refresh_series()?;
        Ok(reader)
    }

    /// Series defined so far (a live recording gains more).
    pub fn refresh_series(&mut self) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, source, metric, unit, kind FROM series ORDER BY id")?;
        self.series = stmt
            .query_map([], |r| {
                Ok(SeriesDef {
                    id: r.get(0)?,
                    source: r.get(1)?,
                    metric: r.get(2)?,
                    unit: r.get(3)?,
                    kind: if r.get::<_, String>(4)? == "gauge" {
                        SeriesKind::Gauge
                    } else {
                        SeriesKind::Counter
                    },
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(())
    }

    /// The time of the last thing recorded.
    pub fn end(&self) -> Result<Nanos> {
        let t: Option<i64> = self.conn.query_row(
            "SELECT max(m) FROM (SELECT max(t) AS m FROM ticks UNION ALL SELECT max(t) FROM events)",
            [],
            |r| r.get(0),
        )?;
        Ok(t.unwrap_or(0).max(0) as Nanos)
    }

    /// Samples with `from <= t < to`, decoded from the keyframe before `from`.
    pub fn samples(&self, from: Nanos, to: Nanos) -> Result<Vec<Sample>> {
        let start_seq: i64 = self
            .conn
            .query_row(
                "SELECT max(seq) FROM ticks WHERE keyframe = 1 AND t <= ?1",
                [sql_time(from)],
                |r| r.get::<_, Option<i64>>(0),
            )?
            .unwrap_or(0);
        let mut stmt = self.conn.prepare_cached(
            "SELECT t, keyframe, data FROM ticks WHERE seq >= ?1 AND t < ?2 ORDER BY seq",
        )?;
        let mut rows = stmt.query(params![start_seq, sql_time(to)])?;
        let mut delta = DeltaState::default();
        let mut samples = Vec::new();
        while let Some(row) = rows.next()? {
            let t = row.get::<_, i64>(0)? as Nanos;
            if row.get::<_, bool>(1)? {
                delta.reset();
            }
            let data = row.get_ref(2)?.as_blob()?;
            let values = delta
                .decode(data)
                .with_context(|| format!("the sample record at t={t} ns is damaged"))?;
            if t >= from {
                samples.push(Sample { t, values });
            }
        }
        Ok(samples)
    }

    /// Events other than samples with `from <= t < to`, in recorded order.
    pub fn events(&self, from: Nanos, to: Nanos) -> Result<Vec<Event>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT body FROM events WHERE t >= ?1 AND t < ?2 ORDER BY seq")?;
        let events = stmt
            .query_map(params![sql_time(from), sql_time(to)], |r| {
                r.get::<_, String>(0)
            })?
            .map(|body| -> Result<Event> { Ok(serde_json::from_str(&body?)?) })
            .collect::<Result<Vec<_>>>()?;
        Ok(events)
    }

    /// Events from `events_from` and samples from `samples_from`, up to `to`,
    /// merged by time as the live session produced them.
    pub fn timeline(
        &self,
        events_from: Nanos,
        samples_from: Nanos,
        to: Nanos,
    ) -> Result<Vec<Event>> {
        let samples = self.samples(samples_from, to)?;
        let events = self.events(events_from, to)?;
        let mut merged = Vec::with_capacity(samples.len() + events.len());
        let mut samples = samples.into_iter().peekable();
        for event in events {
            let t = event.t().unwrap_or(0);
            while let Some(sample) = samples.next_if(|s| s.t <= t) {
                merged.push(Event::Sample(sample));
            }
            merged.push(event);
        }
        merged.extend(samples.map(Event::Sample));
        Ok(merged)
    }

    /// Every event of the recording in order, series definitions first,
    /// read a slice of time at a time so that memory stays bounded.
    pub fn for_each_event(&self, mut f: impl FnMut(&Event) -> Result<()>) -> Result<()> {
        for event in self.series_events() {
            f(&event)?;
        }
        let end = self.end()?;
        let mut from = 0;
        while from <= end {
            for event in self.timeline(from, from, from + READ_SLICE)? {
                f(&event)?;
            }
            from += READ_SLICE;
        }
        Ok(())
    }

    /// Series definitions as events, for a model that starts from nothing.
    pub fn series_events(&self) -> impl Iterator<Item = Event> + '_ {
        self.series.iter().cloned().map(Event::SeriesDefined)
    }

    /// Bytes of the file and of its write-ahead log, if any.
    pub fn size_on_disk(path: &Path) -> u64 {
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        [path.to_path_buf(), wal]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        recorder.close().expect("close");
        assert!(
            !PathBuf::from(format!("{}-wal", path.display())).exists(),
            "a closed recording is one file"
        );
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
        assert_eq!(
            read, first,
            "everything before the torn flush, nothing after"
        );
        recorder.close().expect("close");
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

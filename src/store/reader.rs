//! Reading a recording: read-only, while it is being written or after,
//! up to its first damage or salvaging around it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::codec::DeltaState;
use crate::header::Header;

use super::{FORMAT_VERSION, LATE_ARRIVAL, MAX_SKIPS, READ_SLICE, sidecar, sql_time};

/// SQLite calls the progress handler every this many virtual-machine steps...
const PROGRESS_EVERY: std::ffi::c_int = 10_000;
/// ...and a query is stopped after this many calls: 2·10^8 steps, far
/// beyond any honest query over a recording, a second or so of a stuck one.
const QUERY_BUDGET: u64 = 20_000;
use crate::event::{Event, Nanos, Sample, SeriesDef, SeriesKind};

/// A recording opened for reading, possibly while it is still being written.
///
/// Reading never writes beside the file: a closed recording is opened
/// immutable (no `-wal` or `-shm` appears, read-only media work). A damaged
/// recording is read up to its first damage, which [`Reader::warnings`]
/// names; a salvaging reader skips what it cannot read and keeps the rest.
pub struct Reader {
    conn: Connection,
    /// Progress-handler calls since the current query began (see `guard`).
    work: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub header: Header,
    pub series: Vec<SeriesDef>,
    path: PathBuf,
    salvage: bool,
    damage: std::cell::RefCell<Damage>,
}

/// What to do with a row, by its key (see `Reader::next_key`).
enum Key {
    Row(i64, Nanos),
    Skip,
    Stop,
}

#[derive(Default)]
struct Damage {
    /// Not salvaging: nothing at or after this time is read.
    cut: Option<Nanos>,
    notes: Vec<String>,
}

/// Why a file could not be read as a recording: bad input (exit code 2),
/// unlike a failure to read one that is.
#[derive(Debug)]
pub struct NotARecording(pub String);

impl std::fmt::Display for NotARecording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotARecording {}

/// A path as an SQLite URI's file name: `%`, `?` and `#` escaped.
fn uri_path(path: &Path) -> String {
    let mut out = String::from("file:");
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'%' | b'?' | b'#' => out.push_str(&format!("%{b:02X}")),
            _ if b.is_ascii_graphic() || *b == b' ' => out.push(*b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Opens without writing beside the file. A closed recording is immutable.
/// One with a write-ahead log beside it (still being written, or its writer
/// died) has its last commits in the log, which needs the shared-memory
/// index; where that cannot be had (read-only media), the main file alone
/// is read and `Some(note)` says so.
fn open_read_only(path: &Path) -> rusqlite::Result<(Connection, Option<String>)> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let open =
        |mode: &str| Connection::open_with_flags(format!("{}?{mode}", uri_path(path)), flags);
    if !sidecar(path, "-wal").exists() {
        return Ok((open("immutable=1")?, None));
    }
    let conn = open("mode=ro")?;
    // SQLite opens lazily: the first read tells whether the log is usable.
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => Ok((conn, None)),
        Err(e) => Ok((
            open("immutable=1")?,
            Some(format!(
                "{}: its write-ahead log cannot be read here ({e}); what the main file holds is shown",
                path.display()
            )),
        )),
    }
}

impl Reader {
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, false)
    }

    /// Opens a recording for salvage: every readable row is kept, damaged
    /// ones are skipped and named in the warnings.
    pub fn open_salvaging(path: &Path) -> Result<Self> {
        Self::open_with(path, true)
    }

    fn open_with(path: &Path, salvage: bool) -> Result<Self> {
        if !path.exists() {
            bail!("{}: no such recording", path.display());
        }
        let not_a_recording =
            |why: String| anyhow::Error::new(NotARecording(format!("{}: {why}", path.display())));
        let (conn, note) =
            open_read_only(path).with_context(|| format!("opening {}", path.display()))?;
        // A damaged b-tree can send SQLite round in circles inside one step:
        // every query gets a budget, and a query over it is interrupted
        // (and taken as damage) instead of hanging the reader.
        let work = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let spent = work.clone();
        conn.progress_handler(
            PROGRESS_EVERY,
            Some(move || spent.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= QUERY_BUDGET),
        );
        let version: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'format_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| not_a_recording(format!("not a vmbench recording ({e})")))?;
        match version.as_deref().map(str::parse::<u32>) {
            Some(Ok(FORMAT_VERSION)) => {}
            Some(Ok(v)) => bail!(
                "{} has format version {v}; this vmbench reads {FORMAT_VERSION}",
                path.display()
            ),
            _ => {
                return Err(not_a_recording(
                    "not a vmbench recording (no format version)".into(),
                ));
            }
        }
        let header: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'header'", [], |r| {
                r.get(0)
            })
            .map_err(|e| not_a_recording(format!("its header cannot be read ({e})")))?;
        let header: Header = serde_json::from_str(&header)
            .map_err(|e| not_a_recording(format!("its header is damaged ({e})")))?;
        let mut reader = Reader {
            conn,
            work,
            header,
            series: Vec::new(),
            path: path.to_path_buf(),
            salvage,
            damage: std::cell::RefCell::new(Damage {
                cut: None,
                notes: note.into_iter().collect(),
            }),
        };
        reader.refresh_series()?;
        Ok(reader)
    }

    /// What could not be read, one line each, naming the file.
    pub fn warnings(&self) -> Vec<String> {
        self.damage.borrow().notes.clone()
    }

    /// Notes damage at session time `t`: a salvaging reader goes on past
    /// it; otherwise nothing from `t` on is read any more.
    fn damaged(&self, t: Nanos, what: String) {
        let mut damage = self.damage.borrow_mut();
        if self.salvage {
            damage
                .notes
                .push(format!("{}: skipped {what}", self.path.display()));
            return;
        }
        if damage.cut.is_some_and(|cut| cut <= t) {
            return;
        }
        damage.cut = Some(t);
        let lost = self.rows_from(t);
        damage.notes.push(format!(
            "{}: damaged at {} ({what}); read up to there, {lost} left out \
             (`vmbench export --salvage` keeps every readable row)",
            self.path.display(),
            crate::format::clock(t),
        ));
    }

    /// How many events and sample records lie at or after `t`, as far as
    /// the damaged file can count them.
    fn rows_from(&self, t: Nanos) -> String {
        self.guard();
        let count = |table: &str| {
            self.conn
                .query_row(
                    &format!("SELECT count(*) FROM {table} WHERE t >= ?1"),
                    [sql_time(t)],
                    |r| r.get::<_, i64>(0),
                )
                .map_or_else(|_| "an unknown number of".to_string(), |n| n.to_string())
        };
        format!(
            "{} events and {} sample records",
            count("events"),
            count("ticks")
        )
    }

    /// The end of what may be read: `to`, or the damage before it.
    fn readable_until(&self, to: Nanos) -> Nanos {
        self.damage.borrow().cut.map_or(to, |cut| cut.min(to))
    }

    /// Series defined so far (a live recording gains more).
    pub fn refresh_series(&mut self) -> Result<()> {
        self.guard();
        let mut stmt = self
            .conn
            .prepare("SELECT id, source, metric, unit, kind FROM series ORDER BY id")?;
        let rows = stmt.query_map([], |r| {
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
        })?;
        // A damaged definition costs its series only: its values are
        // skipped where samples are read (they name no known series).
        let mut series: Vec<SeriesDef> = Vec::new();
        let mut damaged = 0;
        for row in rows {
            match row {
                // In id order; an id that goes back is a damaged b-tree
                // going round in a circle.
                Ok(def) if series.last().is_some_and(|last| def.id <= last.id) => {
                    damaged += 1;
                    break;
                }
                Ok(def) => series.push(def),
                Err(_) => damaged += 1,
            }
        }
        if damaged > 0 {
            self.damage.borrow_mut().notes.push(format!(
                "{}: {damaged} series definition(s) damaged; their values are left out",
                self.path.display()
            ));
        }
        self.series = series;
        Ok(())
    }

    /// The time of the last thing recorded.
    pub fn end(&self) -> Result<Nanos> {
        self.guard();
        let t: Option<i64> = self
            .conn
            .query_row(
                "SELECT max(m) FROM (SELECT max(t) AS m FROM ticks UNION ALL SELECT max(t) FROM events)",
                [],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| {
                self.damaged(0, format!("its time index: {e}"));
                None
            });
        Ok(self.readable_until(t.unwrap_or(0).max(0) as Nanos))
    }

    /// Samples with `from <= t < to` in time order, decoded from a keyframe
    /// before `from`. Records are stored in arrival order, and a guest's
    /// sample (stamped on arrival from its own clock) can come after a later
    /// host sample: hence the sort, and a keyframe a little earlier than
    /// `from`.
    pub fn samples(&self, from: Nanos, to: Nanos) -> Result<Vec<Sample>> {
        let to = self.readable_until(to);
        self.guard();
        let start_seq: i64 = self
            .conn
            .query_row(
                // Down the time index to the nearest keyframe (one in 64
                // records): a seek, not a scan of everything before it.
                "SELECT seq FROM ticks WHERE keyframe = 1 AND t <= ?1 ORDER BY t DESC LIMIT 1",
                [sql_time(from.saturating_sub(LATE_ARRIVAL))],
                |r| r.get::<_, Option<i64>>(0),
            )
            .unwrap_or(None)
            .unwrap_or(0);
        let mut samples = Vec::new();
        let mut cursor = start_seq;
        let mut skips = 0;
        'rows: loop {
            // Every record from the keyframe on is decoded, in the order
            // written: each is a delta on the one before, whatever its time.
            // Reading stops once records are well past `to`.
            let mut stmt = self.conn.prepare_cached(
                "SELECT seq, t, keyframe, data FROM ticks WHERE seq >= ?1 ORDER BY seq",
            )?;
            self.guard();
            let mut rows = stmt.query(params![cursor])?;
            let mut delta = DeltaState::default();
            // Deltas need their keyframe: until one is read, records are skipped.
            let mut in_step = false;
            loop {
                let row = match rows.next() {
                    Ok(Some(row)) => row,
                    Ok(None) => break 'rows,
                    Err(e) => {
                        let what = format!("sample records after #{cursor}: {e}");
                        match self.jump_over("ticks", cursor, 0, what, &mut skips) {
                            Some(next) => {
                                cursor = next;
                                continue 'rows;
                            }
                            None => break 'rows,
                        }
                    }
                };
                let t = match self.next_key(row, "ticks", "sample records", 0, &mut cursor) {
                    Key::Row(_, t) => t,
                    Key::Skip => {
                        in_step = false;
                        continue;
                    }
                    Key::Stop => break 'rows,
                };
                if t >= to.saturating_add(LATE_ARRIVAL) {
                    break 'rows;
                }
                if row.get::<_, bool>(2).unwrap_or(false) {
                    delta.reset();
                    in_step = true;
                }
                if !in_step {
                    continue;
                }
                let decoded = match row.get_ref(3).map(|v| v.as_blob()) {
                    Ok(Ok(data)) => delta
                        .decode(data)
                        .ok_or_else(|| "its values do not decode".to_string()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match decoded {
                    Ok(values) => {
                        if t >= from && t < self.readable_until(to) {
                            samples.push(Sample { t, values });
                        }
                    }
                    Err(why) => {
                        self.damaged(t, format!("the sample record at t={t} ns: {why}"));
                        if !self.salvage {
                            break 'rows;
                        }
                        in_step = false;
                    }
                }
            }
        }
        samples.retain(|s| s.t < self.readable_until(to));
        samples.sort_by_key(|s| s.t);
        Ok(samples)
    }

    /// A row's key and time, checked: a damaged key or time is noted and
    /// skipped (salvaging) or ends the read; a key that goes back means the
    /// table's b-tree is damaged into a cycle, which ends the read. Moves
    /// `cursor` past the row, never back.
    fn next_key(
        &self,
        row: &rusqlite::Row<'_>,
        table: &str,
        what: &str,
        at_least: Nanos,
        cursor: &mut i64,
    ) -> Key {
        let (seq, t) = match (row.get::<_, i64>(0), row.get::<_, i64>(1)) {
            (Ok(seq), Ok(t)) => (seq, t.max(0) as Nanos),
            (seq, _) => {
                self.damaged(
                    self.time_of(table, *cursor).max(at_least),
                    format!("{what} after #{cursor}: its key or time"),
                );
                return match seq {
                    Ok(seq) if self.salvage && seq >= *cursor => {
                        *cursor = seq + 1;
                        Key::Skip
                    }
                    Err(_) if self.salvage => {
                        *cursor += 1;
                        Key::Skip
                    }
                    _ => Key::Stop,
                };
            }
        };
        if seq < *cursor {
            self.damaged(
                t,
                format!("{what} after #{cursor}: they go round in a circle"),
            );
            return Key::Stop;
        }
        *cursor = seq + 1;
        Key::Row(seq, t)
    }

    /// Starts a query's budget afresh.
    fn guard(&self) {
        self.work.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// A stretch of `table` cannot be read from `cursor` on (SQLite says
    /// the file is damaged there): noted, and where to go on from when
    /// salvaging (farther each time), or None to stop.
    fn jump_over(
        &self,
        table: &str,
        cursor: i64,
        at_least: Nanos,
        what: String,
        skips: &mut u32,
    ) -> Option<i64> {
        let stuck = self.work.load(std::sync::atomic::Ordering::Relaxed) >= QUERY_BUDGET;
        self.damaged(self.time_of(table, cursor).max(at_least), what);
        // Over its budget, SQLite was going round in circles: jumping on
        // would only go round again.
        if stuck || !self.salvage || *skips >= MAX_SKIPS {
            return None;
        }
        *skips += 1;
        Some(cursor + (1 << *skips))
    }

    /// The time of row `seq` of `table`, or 0 when even that is unreadable.
    fn time_of(&self, table: &str, seq: i64) -> Nanos {
        self.guard();
        self.conn
            .query_row(
                &format!("SELECT t FROM {table} WHERE seq <= ?1 ORDER BY seq DESC LIMIT 1"),
                [seq],
                |r| r.get::<_, i64>(0),
            )
            .map_or(0, |t| t.max(0) as Nanos)
    }

    /// Events other than samples with `from <= t < to`, in recorded order.
    pub fn events(&self, from: Nanos, to: Nanos) -> Result<Vec<Event>> {
        let to = self.readable_until(to);
        let mut events = Vec::new();
        let mut cursor: i64 = 0;
        let mut skips = 0;
        'rows: loop {
            let mut stmt = self.conn.prepare_cached(
                "SELECT seq, t, body FROM events WHERE t >= ?1 AND t < ?2 AND seq >= ?3 ORDER BY seq",
            )?;
            self.guard();
            let mut rows = stmt.query(params![sql_time(from), sql_time(to), cursor])?;
            loop {
                let row = match rows.next() {
                    Ok(Some(row)) => row,
                    Ok(None) => break 'rows,
                    Err(e) => {
                        let what = format!("events after #{cursor}: {e}");
                        match self.jump_over("events", cursor, from, what, &mut skips) {
                            Some(next) => {
                                cursor = next;
                                continue 'rows;
                            }
                            None => break 'rows,
                        }
                    }
                };
                let (seq, t) = match self.next_key(row, "events", "events", from, &mut cursor) {
                    Key::Row(seq, t) => (seq, t),
                    Key::Skip => continue,
                    Key::Stop => break 'rows,
                };
                let parsed = match row.get_ref(2).map(|v| v.as_bytes()) {
                    Ok(Ok(body)) => std::str::from_utf8(body)
                        .map_err(|e| e.to_string())
                        .and_then(|text| {
                            serde_json::from_str::<Event>(text).map_err(|e| e.to_string())
                        }),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match parsed {
                    Ok(event) => events.push(event),
                    Err(why) => {
                        self.damaged(t, format!("event #{seq} at t={t} ns: {why}"));
                        if !self.salvage {
                            break 'rows;
                        }
                    }
                }
            }
        }
        let until = self.readable_until(to);
        events.retain(|e| e.t().is_none_or(|t| t < until));
        Ok(events)
    }

    /// Whether the session wrote its end into the recording at `since` or
    /// later: the end is the last event, so a follower asks only about the
    /// recording's last stretch (through the time index, not a scan).
    pub fn has_ended_since(&self, since: Nanos) -> Result<bool> {
        self.guard();
        let found: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM events WHERE t >= ?1 AND kind = 'session_ended' LIMIT 1",
                [sql_time(since)],
                |r| r.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// When each phase started, in the order they ran: where a replay seeks
    /// to by phase.
    pub fn phase_starts(&self) -> Result<Vec<Nanos>> {
        self.guard();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT t FROM events WHERE kind = 'phase_started' ORDER BY seq")?;
        let until = self.readable_until(Nanos::MAX);
        let starts = stmt
            .query_map([], |r| r.get::<_, i64>(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok(starts
            .into_iter()
            .map(|t| t.max(0) as Nanos)
            .filter(|t| *t < until)
            .collect())
    }

    /// Events from `events_from` and samples from `samples_from`, up to `to`,
    /// merged by time as the live session produced them.
    pub fn timeline(
        &self,
        events_from: Nanos,
        samples_from: Nanos,
        to: Nanos,
    ) -> Result<Vec<Event>> {
        // Events first: damage found among them cuts the samples too.
        let events = self.events(events_from, to)?;
        let samples = self.samples(samples_from, to)?;
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
    /// read a slice of time at a time so that memory stays bounded. Empty
    /// stretches are jumped over, so that a damaged time far in the future
    /// costs one query, not billions of slices.
    pub fn for_each_event(&self, mut f: impl FnMut(&Event) -> Result<()>) -> Result<()> {
        for event in self.series_events() {
            f(&event)?;
        }
        let end = self.end()?;
        let mut from = 0;
        while from <= end {
            let to = from.saturating_add(READ_SLICE);
            for event in self.timeline(from, from, to)? {
                f(&event)?;
            }
            match self.next_time_from(to) {
                Some(next) if next >= to && to < Nanos::MAX => from = next,
                // An index that answers a time before the one asked for is
                // damaged: following it could go round for ever.
                Some(_) if to < Nanos::MAX => {
                    self.damaged(to, "its time index, which goes back in time".into());
                    break;
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// The earliest time at or after `t` that anything was recorded at.
    fn next_time_from(&self, t: Nanos) -> Option<Nanos> {
        self.guard();
        self.conn
            .query_row(
                "SELECT min(m) FROM (SELECT min(t) AS m FROM ticks WHERE t >= ?1 \
                 UNION ALL SELECT min(t) FROM events WHERE t >= ?1)",
                [sql_time(t)],
                |r| r.get::<_, Option<i64>>(0),
            )
            .ok()
            .flatten()
            .map(|t| t.max(0) as Nanos)
    }

    /// Series definitions as events, for a model that starts from nothing.
    pub fn series_events(&self) -> impl Iterator<Item = Event> + '_ {
        self.series.iter().cloned().map(Event::SeriesDefined)
    }

    /// Bytes of the file and of its write-ahead log, if any.
    pub fn size_on_disk(path: &Path) -> u64 {
        [path.to_path_buf(), sidecar(path, "-wal")]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

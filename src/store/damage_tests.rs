//! Damaged, truncated and mutated recordings: read up to the damage with a
//! warning, salvaged around it on request, never a panic or a hang, and
//! never a file written beside the one read.

use std::path::{Path, PathBuf};
use std::sync::mpsc::channel;
use std::time::Duration;

use super::{Reader, Recorder, sidecar};
use crate::event::{Event, LogLevel, Sample, SeriesDef, SeriesKind};
use crate::model::tests::test_header;

/// A closed recording with 200 log events (one every 100 ms, each with a
/// marker of its own) and 200 samples of three counters.
fn recording(dir: &Path) -> PathBuf {
    let path = dir.join("r.vmb");
    let recorder = Recorder::create(&path, &test_header()).expect("create");
    for id in 0..3 {
        recorder
            .record(Event::SeriesDefined(SeriesDef {
                id,
                source: "host".into(),
                metric: format!("m{id}"),
                unit: "ticks".into(),
                kind: SeriesKind::Counter,
            }))
            .expect("record");
    }
    for i in 0..200u64 {
        let t = i * 100_000_000;
        recorder
            .record(Event::Log {
                t,
                level: LogLevel::Info,
                text: format!("marker-{i:04}"),
            })
            .expect("record");
        recorder
            .record(Event::Sample(Sample {
                t: t + 1,
                values: vec![(0, i * 7), (1, 1_000_000 - i), (2, i * i)],
            }))
            .expect("record");
    }
    recorder.close().expect("close");
    path
}

fn read_all(reader: &Reader) -> (usize, usize) {
    let (mut events, mut samples) = (0, 0);
    reader
        .for_each_event(|e| {
            match e {
                Event::Sample(_) => samples += 1,
                Event::SeriesDefined(_) => {}
                _ => events += 1,
            }
            Ok(())
        })
        .expect("read");
    (events, samples)
}

#[test]
fn reading_a_closed_recording_writes_nothing_beside_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = recording(dir.path());
    let reader = Reader::open(&path).expect("open");
    assert_eq!(read_all(&reader), (200, 200));
    drop(reader);
    for suffix in ["-wal", "-shm", "-writer"] {
        assert!(
            !sidecar(&path, suffix).exists(),
            "reading left {suffix} beside the recording"
        );
    }
}

#[test]
fn a_recording_damaged_in_the_middle_is_read_up_to_the_damage_or_salvaged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = recording(dir.path());
    let mut bytes = std::fs::read(&path).expect("read");
    let marker = b"marker-0100";
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the event is in the file");
    // Bytes overwritten in place: no longer UTF-8, no longer JSON.
    bytes[at..at + 6].fill(0xff);
    std::fs::write(&path, &bytes).expect("write");

    let reader = Reader::open(&path).expect("a damaged recording opens");
    let (events, samples) = read_all(&reader);
    assert_eq!(events, 100, "every event before the damage");
    assert_eq!(samples, 100, "every sample before the damage");
    let warnings = reader.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("r.vmb: damaged at 00:10") && warnings[0].contains("--salvage"),
        "{warnings:?}"
    );
    assert!(warnings[0].contains("100 events"), "{warnings:?}");

    let salvaged = Reader::open_salvaging(&path).expect("open");
    assert_eq!(read_all(&salvaged), (199, 200));
    assert!(
        salvaged.warnings()[0].contains("skipped event"),
        "{:?}",
        salvaged.warnings()
    );
}

#[test]
fn a_truncated_recording_is_refused_by_name_or_read_as_far_as_it_goes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = recording(dir.path());
    let bytes = std::fs::read(&path).expect("read");
    let whole = read_all_lenient(&Reader::open(&path).expect("the whole file"));
    for keep in [0, 100, 4096, bytes.len() / 2, bytes.len() - 1] {
        let cut = dir.path().join(format!("cut-{keep}.vmb"));
        std::fs::write(&cut, &bytes[..keep]).expect("write");
        match Reader::open(&cut) {
            // What is read of a cut file is never more than the whole had.
            Ok(reader) => assert!(read_all_lenient(&reader) <= whole, "cut at {keep}"),
            Err(e) => {
                let text = format!("{e:#}");
                assert!(text.contains(&format!("cut-{keep}.vmb")), "{text}");
                if keep < 4096 {
                    // Too short to hold even the header: bad input (exit 2).
                    assert!(e.downcast_ref::<super::NotARecording>().is_some(), "{text}");
                }
            }
        }
    }
}

/// Opens and reads a file on a thread of its own: Ok(opened) when that
/// ends, Err("panicked" / "hangs") when it panics or takes over 20 s.
fn read_within(file: &Path, salvage: bool) -> Result<bool, &'static str> {
    let (tx, rx) = channel();
    let file = file.to_path_buf();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(|| {
            let reader = if salvage {
                Reader::open_salvaging(&file)
            } else {
                Reader::open(&file)
            };
            reader.map(|r| read_all_lenient(&r)).is_ok()
        });
        let _ = tx.send(outcome);
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(Ok(opened)) => Ok(opened),
        Ok(Err(_)) => Err("panicked"),
        Err(_) => Err("hangs"),
    }
}

/// The two mutations fuzzing found the reader hanging on, kept as files:
/// a b-tree damaged into a cycle, and a row whose key went back.
#[test]
fn recordings_that_once_hung_the_reader_are_read_to_their_end() {
    for name in ["damaged-into-a-cycle.vmb", "damaged-key-goes-back.vmb"] {
        let file = PathBuf::from(format!(
            "{}/tests/fixtures/recordings/{name}",
            env!("CARGO_MANIFEST_DIR")
        ));
        for salvage in [false, true] {
            assert_eq!(
                read_within(&file, salvage),
                Ok(true),
                "{name}, salvage {salvage}"
            );
        }
    }
}

/// Reads everything, tolerating errors (a mutated file may fail a query
/// outright); what matters is that it returns.
fn read_all_lenient(reader: &Reader) -> usize {
    let mut n = 0;
    let _ = reader.for_each_event(|_| {
        n += 1;
        Ok(())
    });
    n
}

/// The reader over many mutated copies of a real recording: random bytes
/// overwritten, flipped or cut off, both reading modes. Each read runs on
/// a thread of its own and must end (a hang fails the test) without a panic.
#[test]
fn mutated_recordings_never_panic_or_hang() {
    // The two hangs this found are kept as files (test above).
    const CASES: u64 = 2500;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = recording(dir.path());
    let original = std::fs::read(&path).expect("read");
    let mut rng = fastrand::Rng::with_seed(0x0076_6d62_656e_6368);
    let mut opened = 0;
    for case in 0..CASES {
        let mut bytes = original.clone();
        match case % 3 {
            0 => {
                for _ in 0..rng.usize(1..16) {
                    let i = rng.usize(..bytes.len());
                    bytes[i] = rng.u8(..);
                }
            }
            1 => {
                let i = rng.usize(..bytes.len());
                let len = rng.usize(1..512).min(bytes.len() - i);
                bytes[i..i + len].iter_mut().for_each(|b| *b ^= 0xa5);
            }
            _ => bytes.truncate(rng.usize(..bytes.len())),
        }
        let mutated = dir.path().join(format!("m{case}.vmb"));
        std::fs::write(&mutated, &bytes).expect("write");
        match read_within(&mutated, case % 2 == 0) {
            Ok(true) => opened += 1,
            Ok(false) => {}
            Err(why) => panic!("case {case}: the reader {why} on {}", mutated.display()),
        }
        let _ = std::fs::remove_file(&mutated);
    }
    eprintln!("{CASES} mutated recordings read, {opened} opened, 0 panics, 0 hangs");
    assert!(
        opened > 0,
        "no mutation left a readable file: the test reads nothing"
    );
}

//! Replay of a long recording: open to first frame.

use std::path::Path;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use vmbench::event::Event;
use vmbench::model::Session;
use vmbench::sample::{HostSampler, SeriesIds};
use vmbench::store::{Reader, Recorder};
use vmbench::ui::theme::Theme;
use vmbench::ui::{Feed, View, render};

use crate::{header, median};

/// One hour of this host's counters as the recorder stores them: 3,600
/// samples taken back to back and stamped 1 s apart. Back-to-back counters
/// barely move, so this file is smaller than a real hour's; bytes per value
/// are measured on a real 1 Hz session instead (`cost`). What this measures is
/// how fast replay opens an hour of ticks and draws its first frame.
pub fn bench_replay_open(dir: &Path) {
    let path = dir.join("hour.vmb");
    let recorder = Recorder::create(&path, &header(6)).expect("recorder");
    let mut sampler = HostSampler::new(SeriesIds::default()).expect("/proc");
    for tick in 0..3600u64 {
        let sample = sampler.sample(tick * 1_000_000_000);
        for def in sampler.take_new_series() {
            recorder.record(Event::SeriesDefined(def)).expect("record");
        }
        recorder.record(Event::Sample(sample)).expect("record");
        if tick % 600 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    recorder.close().expect("close");
    let theme = Theme::built_in("dark").expect("theme");
    let view = View::new(Feed::Replay {
        speed: 1.0,
        paused: false,
        end: 3_600_000_000_000,
    });
    let open_ms = median(
        (0..7)
            .map(|_| {
                let start = Instant::now();
                let reader = Reader::open(&path).expect("open");
                let mut session = Session::new(reader.header.clone());
                for e in reader.series_events() {
                    session.apply(&e);
                }
                for e in reader.timeline(0, 0, 30_000_000_000).expect("first chunk") {
                    session.apply(&e);
                }
                let mut terminal = Terminal::new(TestBackend::new(120, 40)).expect("terminal");
                terminal
                    .draw(|f| render(f, &session, &theme, &view))
                    .expect("draw");
                start.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    );
    println!(
        "replay of a 1-hour recording (3,600 ticks of this host's counters, {} kB), open to first frame: {open_ms:.1} ms",
        Reader::size_on_disk(&path) / 1000
    );
}

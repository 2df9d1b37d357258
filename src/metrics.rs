//! Live metrics for the tools operators already run: `--metrics-listen
//! ADDR` serves the session's latest counters and gauges and the phase
//! under way in the Prometheus text format. A scrape is one message on the
//! bus, answered by the single owner of the session's state, so it sees
//! the model as the screen does and takes nothing from it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::bus::Msg;
use crate::event::SeriesKind;
use crate::model::{RunState, Session};

/// How long a scrape waits for the session to answer.
const ANSWER: Duration = Duration::from_secs(2);

/// Binds `addr` (port 0 picks one), before the session starts: an address
/// in use is said before anything runs.
pub fn listen(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).with_context(|| format!("listening for metrics on {addr}"))
}

/// Serves `GET /metrics` on `listener` from the session behind `bus`, on a
/// thread of its own; returns the address it serves on.
pub fn serve(listener: TcpListener, bus: Sender<Msg>) -> Result<SocketAddr> {
    let bound = listener.local_addr()?;
    let busy = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                // Each client on a thread of its own, so that a slow one
                // holds up nobody; a few at a time.
                if busy.fetch_add(1, Ordering::SeqCst) >= MOST_CLIENTS {
                    busy.fetch_sub(1, Ordering::SeqCst);
                    continue;
                }
                let (bus, busy) = (bus.clone(), busy.clone());
                let spawned = std::thread::Builder::new()
                    .name("metrics-client".into())
                    .spawn(move || {
                        let _ = answer(stream, &bus);
                        busy.fetch_sub(1, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    return;
                }
            }
        })?;
    Ok(bound)
}

/// Clients answered at once; more are turned away.
const MOST_CLIENTS: usize = 8;
/// The longest request read (its line and headers).
const LONGEST_REQUEST: u64 = 8 << 10;

/// One request, one answer, then the connection closes.
fn answer(stream: TcpStream, bus: &Sender<Msg>) -> std::io::Result<()> {
    stream.set_read_timeout(Some(ANSWER))?;
    stream.set_write_timeout(Some(ANSWER))?;
    let mut reader = BufReader::new((&stream).take(LONGEST_REQUEST));
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // The headers are read and not needed.
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        header.clear();
    }
    let mut stream = &stream;
    let path = request.split_whitespace().nth(1).unwrap_or("");
    if !request.starts_with("GET ") || path.split('?').next() != Some("/metrics") {
        let body = "vmbench serves /metrics\n";
        return write!(
            stream,
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
    let (reply, answered) = channel();
    let body = bus
        .send(Msg::Scrape(reply))
        .ok()
        .and_then(|()| answered.recv_timeout(ANSWER).ok());
    match body {
        Some(body) => write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        None => {
            write!(
                stream,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The guest a source is about: `guest:g1/cpu0` and `host-seen:g1` are g1's.
fn guest_of(source: &str) -> &str {
    source
        .strip_prefix("guest:")
        .or_else(|| source.strip_prefix("host-seen:"))
        .map_or("", |rest| rest.split('/').next().unwrap_or(rest))
}

/// The session as metrics: every series' latest value (counters as
/// counters), labelled by source, metric, unit, guest and technology; the
/// phase under way; each running copy's work so far. Label sets stay
/// bounded: one per series, and per copy of the current phase only.
pub fn exposition(session: &Session) -> String {
    let technology_of = |guest: &str| -> String {
        session
            .plan
            .as_ref()
            .and_then(|p| p.guests.iter().find(|g| g.name() == guest))
            .map_or(String::new(), |g| g.technology.clone())
    };
    let mut counters = String::new();
    let mut gauges = String::new();
    for series in session.all_series() {
        let Some((_, value)) = series.points.back() else {
            continue;
        };
        let def = &series.def;
        // One label set per series: a guest connected again defines its
        // series anew, and only the newest stands; a copy's process only
        // while it runs.
        if session
            .series_named(&def.source, &def.metric)
            .map(|s| s.def.id)
            != Some(def.id)
        {
            continue;
        }
        if let Some(run) = def.source.strip_prefix("run/") {
            let running = run
                .parse()
                .ok()
                .and_then(|id| session.runs.get(&id))
                .is_some_and(|r| r.state == RunState::Running);
            if !running {
                continue;
            }
        }
        let guest = guest_of(&def.source);
        let mut labels = format!(
            "source=\"{}\",metric=\"{}\",unit=\"{}\"",
            escape(&def.source),
            escape(&def.metric),
            escape(&def.unit),
        );
        // A guest's series say whose and of what technology; this host's
        // have neither (an empty label is no label to Prometheus).
        if !guest.is_empty() {
            labels.push_str(&format!(
                ",guest=\"{}\",technology=\"{}\"",
                escape(guest),
                escape(&technology_of(guest))
            ));
        }
        let family = match def.kind {
            SeriesKind::Counter => &mut counters,
            SeriesKind::Gauge => &mut gauges,
        };
        let name = match def.kind {
            SeriesKind::Counter => "vmbench_counter_total",
            SeriesKind::Gauge => "vmbench_gauge",
        };
        family.push_str(&format!("{name}{{{labels}}} {value}\n"));
    }
    let mut out = String::new();
    out.push_str("# HELP vmbench_counter_total A counter vmbench samples, as last read.\n");
    out.push_str("# TYPE vmbench_counter_total counter\n");
    out.push_str(&counters);
    out.push_str("# HELP vmbench_gauge A gauge vmbench samples, as last read.\n");
    out.push_str("# TYPE vmbench_gauge gauge\n");
    out.push_str(&gauges);
    out.push_str("# HELP vmbench_phase The phase under way (1 while it runs), by number.\n");
    out.push_str("# TYPE vmbench_phase gauge\n");
    if let Some(phase) = session.current_phase() {
        out.push_str(&format!(
            "vmbench_phase{{phase=\"{}\",benchmark=\"{}\",concurrency=\"{}\",repetition=\"{}\"}} 1\n",
            phase.id + 1,
            escape(&phase.benchmark),
            phase.concurrency,
            phase.repetition
        ));
    }
    out.push_str("# HELP vmbench_phases_ended_total Phases that have ended.\n");
    out.push_str("# TYPE vmbench_phases_ended_total counter\n");
    let ended = session.phases.iter().filter(|p| p.ended.is_some()).count();
    out.push_str(&format!("vmbench_phases_ended_total {ended}\n"));
    out.push_str(
        "# HELP vmbench_copy_work_total Work a copy of the phase under way has done, in its metric's unit.\n",
    );
    out.push_str("# TYPE vmbench_copy_work_total counter\n");
    if let Some(phase) = session.current_phase() {
        for run in session
            .runs_of(phase)
            .filter(|r| r.state == RunState::Running)
        {
            for (m, def) in run.metrics.iter().enumerate() {
                if let Some((_, done)) = run.progress[m].last() {
                    out.push_str(&format!(
                        "vmbench_copy_work_total{{phase=\"{}\",guest=\"{}\",technology=\"{}\",copy=\"{}\",metric=\"{}\",unit=\"{}\"}} {}\n",
                        phase.id + 1,
                        escape(&run.guest),
                        escape(&run.technology),
                        run.copy + 1,
                        escape(&def.name),
                        escape(&def.unit),
                        done * def.scale
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_and_the_running_copies_are_exposed_with_their_labels() {
        let session = crate::ui::fixtures::many_copies(2);
        let text = exposition(&session);
        assert!(text.contains("# TYPE vmbench_counter_total counter\n"));
        assert!(
            text.contains("vmbench_counter_total{source=\"host\",metric=\"cpu.user\",unit=\"x\"} "),
            "{text}"
        );
        assert!(text.contains("vmbench_gauge{source=\"host\",metric=\"mem.total\""));
        assert!(text.contains("vmbench_phase{phase=\"3\",benchmark=\"cpu\",concurrency=\"2\""));
        assert!(text.contains(
            "vmbench_copy_work_total{phase=\"3\",guest=\"vm00\",technology=\"kvm\",copy=\"1\""
        ));
        // Every sample line is `name{labels} value`, and a name is a
        // metric name.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name_end = line.find(['{', ' ']).expect(line);
            assert!(
                line[..name_end]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
            let value = line.rsplit_once(' ').expect(line).1;
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn a_guests_series_say_whose_they_are() {
        let text = exposition(&crate::ui::fixtures::seen_guests());
        assert!(
            text.contains(
                "vmbench_counter_total{source=\"guest:vm00/cpu0\",metric=\"cpu.user\",unit=\"x\",guest=\"vm00\","
            ),
            "{text}"
        );
        assert!(text.contains(
            "source=\"host-seen:vm01\",metric=\"net.rx_bytes\",unit=\"x\",guest=\"vm01\","
        ));
    }

    #[test]
    fn a_series_defined_again_and_an_ended_copy_leave_no_stale_label_sets() {
        use crate::event::{Event, Sample, SeriesDef};
        let mut session = crate::ui::fixtures::session();
        // A guest connected twice: its counter defined twice.
        for (id, value) in [(200, 5), (201, 9)] {
            session.apply(&Event::SeriesDefined(SeriesDef {
                id,
                source: "guest:vm00".into(),
                metric: "cpu.user".into(),
                unit: "ticks".into(),
                kind: SeriesKind::Counter,
            }));
            session.apply(&Event::Sample(Sample {
                t: 20_000_000_000 + u64::from(id),
                values: vec![(id, value)],
            }));
        }
        // A copy that has ended, and its process's counter.
        session.apply(&Event::SeriesDefined(SeriesDef {
            id: 202,
            source: "run/1".into(),
            metric: "cpu.utime".into(),
            unit: "ticks".into(),
            kind: SeriesKind::Counter,
        }));
        session.apply(&Event::Sample(Sample {
            t: 21_000_000_000,
            values: vec![(202, 3)],
        }));
        let text = exposition(&session);
        let vm00: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("source=\"guest:vm00\""))
            .collect();
        assert_eq!(vm00.len(), 1, "{vm00:?}");
        assert!(vm00[0].ends_with(" 9"), "{vm00:?}");
        assert!(
            !text.contains("source=\"run/1\""),
            "an ended copy's series stays"
        );
    }

    #[test]
    fn a_silent_client_holds_up_no_scrape() {
        let (tx, rx) = channel();
        let addr = serve(listen("127.0.0.1:0").expect("binds"), tx).expect("serves");
        let owner = std::thread::spawn(move || {
            while let Ok(Msg::Scrape(reply)) = rx.recv() {
                let _ = reply.send("vmbench_phases_ended_total 1\n".into());
            }
        });
        // Connected, and never says a word.
        let _silent = TcpStream::connect(addr).expect("connects");
        let mut stream = TcpStream::connect(addr).expect("connects");
        write!(stream, "GET /metrics HTTP/1.1\r\n\r\n").expect("asks");
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).expect("answer");
        assert!(
            answer.ends_with("vmbench_phases_ended_total 1\n"),
            "{answer}"
        );
        drop(owner);
    }

    #[test]
    fn label_values_are_escaped_and_guests_named() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(guest_of("guest:g1/cpu0"), "g1");
        assert_eq!(guest_of("host-seen:g2"), "g2");
        assert_eq!(guest_of("host/net/lo"), "");
    }

    #[test]
    fn a_scrape_is_answered_by_whoever_owns_the_session() {
        let (tx, rx) = channel();
        let addr = serve(listen("127.0.0.1:0").expect("binds"), tx).expect("serves");
        let owner = std::thread::spawn(move || {
            if let Ok(Msg::Scrape(reply)) = rx.recv() {
                let _ = reply.send("vmbench_phases_ended_total 7\n".into());
            }
        });
        let mut stream = TcpStream::connect(addr).expect("connects");
        write!(stream, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("asks");
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).expect("answer");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(
            answer.ends_with("\r\n\r\nvmbench_phases_ended_total 7\n"),
            "{answer}"
        );
        owner.join().expect("owner");
        let mut other = TcpStream::connect(addr).expect("connects");
        write!(other, "GET / HTTP/1.1\r\n\r\n").expect("asks");
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut other, &mut answer).expect("answer");
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    }
}

//! From a plan to its phases: one run of a benchmark per technology (per
//! fleet, per inventory technology group, per technology among the listed
//! guests), at each concurrency level and repetition. A phase never mixes
//! technologies unless its benchmark asks for it (`mix_technologies`), so
//! that "×4" always means four guests of one technology at once.

use serde::{Deserialize, Serialize};

use super::{Benchmark, Guest, Order, Plan, Transport};
use crate::event::Nanos;

/// One step of the sweep: a benchmark on one technology at one
/// concurrency, one repetition.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PlannedPhase {
    pub benchmark: usize,
    pub name: String,
    pub workload: String,
    /// The technology whose guests take its copies; empty for a benchmark
    /// that mixes technologies (and in recordings made before phases were
    /// split by technology, which ran every listed guest together).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub technology: String,
    pub concurrency: u32,
    pub repetition: u32,
    pub duration: Nanos,
}

/// A benchmark's guests of one technology, in copy order.
pub struct TechnologyGroup<'a> {
    /// Empty when the benchmark mixes technologies.
    pub technology: String,
    pub guests: Vec<&'a Guest>,
}

impl TechnologyGroup<'_> {
    /// The bare-metal baseline runs its copies as processes on this host:
    /// any number of them is one machine under load, not crowded guests.
    fn is_local(&self) -> bool {
        self.guests.iter().any(|g| g.transport == Transport::Local)
    }
}

impl Plan {
    /// The phases in the order they run: as planned, or shuffled by the seed.
    pub fn schedule(&self, cores: usize) -> Vec<PlannedPhase> {
        let mut phases = self.planned_schedule(cores);
        if self.order == Order::Random {
            fastrand::Rng::with_seed(self.seed.unwrap_or(0)).shuffle(&mut phases);
        }
        phases
    }

    /// Benchmarks in plan order; within each, technologies in the order
    /// their first guest is listed, then concurrency levels in order and
    /// repetitions innermost.
    fn planned_schedule(&self, cores: usize) -> Vec<PlannedPhase> {
        let mut phases = Vec::new();
        for (b, bench) in self.benchmarks.iter().enumerate() {
            for group in self.technology_groups(bench) {
                for concurrency in bench.concurrency.levels(cores) {
                    for repetition in 1..=bench.repetitions.0 {
                        phases.push(PlannedPhase {
                            benchmark: b,
                            name: bench.name.clone(),
                            workload: bench.workload.label().to_string(),
                            technology: group.technology.clone(),
                            concurrency,
                            repetition,
                            duration: bench.duration.0.as_nanos() as Nanos,
                        });
                    }
                }
            }
        }
        phases
    }

    /// The guests a benchmark's copies run on, in copy order: those its
    /// `guests` lists, or every guest of the plan.
    pub fn guests_of(&self, bench: &Benchmark) -> Vec<&Guest> {
        if bench.guests.is_empty() {
            return self.guests.iter().collect();
        }
        bench
            .guests
            .iter()
            .filter_map(|name| {
                self.guests
                    .iter()
                    .find(|g| g.name.get_ref() == name.get_ref())
            })
            .collect()
    }

    /// A benchmark's guests split by technology, each technology once, in
    /// the order its first guest comes; one group of all of them when the
    /// benchmark mixes technologies.
    pub fn technology_groups(&self, bench: &Benchmark) -> Vec<TechnologyGroup<'_>> {
        let guests = self.guests_of(bench);
        if bench.mix_technologies {
            return vec![TechnologyGroup {
                technology: String::new(),
                guests,
            }];
        }
        let mut groups: Vec<TechnologyGroup> = Vec::new();
        for guest in guests {
            match groups.iter_mut().find(|g| g.technology == guest.technology) {
                Some(group) => group.guests.push(guest),
                None => groups.push(TechnologyGroup {
                    technology: guest.technology.clone(),
                    guests: vec![guest],
                }),
            }
        }
        groups
    }

    /// The guests a phase's copies run on, in copy order (copy i on guest
    /// i mod len): its benchmark's guests of its technology.
    pub fn guests_of_phase(&self, phase: &PlannedPhase) -> Vec<&Guest> {
        let bench = &self.benchmarks[phase.benchmark];
        let guests = self.guests_of(bench);
        if phase.technology.is_empty() {
            return guests;
        }
        guests
            .into_iter()
            .filter(|g| g.technology == phase.technology)
            .collect()
    }

    /// Why the plan cannot run on a host with `cores` cores: a level with
    /// more copies than one technology has guests, where those guests are
    /// not this host (two copies in one guest share its vCPUs, which is not
    /// "two guests at once"). One line per benchmark and technology, with
    /// the counts.
    pub fn overcrowded(&self, cores: usize) -> Vec<String> {
        let mut refusals = Vec::new();
        let mut first = 0;
        for fleet in &self.fleets {
            if let Err(refusal) = fleet.cores_of(0, first, cores) {
                refusals.push(refusal);
            }
            first += fleet.pinned_cores();
        }
        for bench in self.benchmarks.iter().filter(|b| !b.mix_technologies) {
            let Some(most) = bench.concurrency.levels(cores).into_iter().max() else {
                continue;
            };
            for group in self.technology_groups(bench) {
                if !group.is_local() && most as usize > group.guests.len() {
                    refusals.push(format!(
                        "benchmark {:?}: ×{most} needs {most} guests of technology {:?}, which \
                         has {} ({}); add guests (a fleet's `count`), lower the concurrency, or \
                         set `mix_technologies = true` to run copies on guests of every \
                         technology together",
                        bench.name,
                        group.technology,
                        group.guests.len(),
                        group
                            .guests
                            .iter()
                            .map(|g| g.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
        refusals
    }

    /// Benchmarks that mix technologies and whose most copies outnumber
    /// their remote guests, so that guests run several copies at once: a
    /// guest's vCPUs are then shared inside it, which is not what "N guests
    /// at once" means. One line each, said by `vmbench check` and at a
    /// session's start. Copies on this host are processes and share
    /// nothing but the host.
    pub fn crowding_warnings(&self, cores: usize) -> Vec<String> {
        self.benchmarks
            .iter()
            .filter(|b| b.mix_technologies)
            .filter_map(|bench| {
                let guests = self.guests_of(bench);
                if guests.is_empty() || guests.iter().any(|g| g.transport == Transport::Local) {
                    return None;
                }
                let copies = bench.concurrency.levels(cores).into_iter().max()?;
                (copies as usize > guests.len()).then(|| {
                    format!(
                        "{}: ×{copies} runs on {} guests, so some run {} copies at once; give \
                         each copy a guest of its own to compare N guests",
                        bench.name,
                        guests.len(),
                        (copies as usize).div_ceil(guests.len())
                    )
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::plan::LoadedPlan;

    /// Two technologies as the issue found them: c1, c2 of ctA and c3 of ctB.
    fn two_technologies(benchmark: &str) -> LoadedPlan {
        let source = format!(
            "name = \"t\"\n\
             [[guest]]\nname = \"c1\"\ntransport = \"ssh\"\naddress = \"198.18.0.11\"\nuser = \"root\"\ntechnology = \"ctA\"\n\
             [[guest]]\nname = \"c2\"\ntransport = \"ssh\"\naddress = \"198.18.0.12\"\nuser = \"root\"\ntechnology = \"ctA\"\n\
             [[guest]]\nname = \"c3\"\ntransport = \"ssh\"\naddress = \"198.18.0.13\"\nuser = \"root\"\ntechnology = \"ctB\"\n\
             [[guest]]\nname = \"host\"\ntransport = \"local\"\ntechnology = \"bare-metal\"\n\
             [[benchmark]]\nname = \"cpu\"\nworkload = {{ type = \"cpu\" }}\nduration = \"1s\"\n{benchmark}\n"
        );
        LoadedPlan::parse(&source, "t.toml").expect("valid plan")
    }

    #[test]
    fn a_benchmark_runs_once_per_technology_and_a_phase_holds_one() {
        let plan = two_technologies("concurrency = [1]").plan;
        let phases = plan.schedule(2);
        let technologies: Vec<&str> = phases.iter().map(|p| p.technology.as_str()).collect();
        assert_eq!(technologies, ["ctA", "ctB", "bare-metal"]);
        let guests = |i: usize| -> Vec<String> {
            plan.guests_of_phase(&phases[i])
                .iter()
                .map(|g| g.name().to_string())
                .collect()
        };
        assert_eq!(guests(0), ["c1", "c2"]);
        assert_eq!(guests(1), ["c3"]);
        assert_eq!(guests(2), ["host"]);
    }

    #[test]
    fn more_copies_than_a_technology_has_guests_is_refused_with_the_counts_but_not_on_the_host() {
        let plan = two_technologies("concurrency = [1, 2]").plan;
        let refusals = plan.overcrowded(2);
        assert_eq!(refusals.len(), 1, "{refusals:?}");
        assert!(
            refusals[0].contains("×2 needs 2 guests of technology \"ctB\", which has 1 (c3)"),
            "{}",
            refusals[0]
        );
        // The local baseline takes any number of copies: 2 ≤ 3 guests of ctA too.
        let plan = two_technologies("concurrency = [4]").plan;
        let refusals = plan.overcrowded(2);
        assert_eq!(refusals.len(), 2, "ctA and ctB, not the host: {refusals:?}");
    }

    #[test]
    fn a_benchmark_that_asks_to_mix_technologies_runs_every_guest_in_one_phase() {
        let plan = two_technologies("concurrency = [3]\nmix_technologies = true").plan;
        let phases = plan.schedule(2);
        assert_eq!(phases.len(), 1);
        assert_eq!(phases[0].technology, "");
        assert_eq!(plan.guests_of_phase(&phases[0]).len(), 4);
        assert!(plan.overcrowded(2).is_empty());
    }

    #[test]
    fn guests_named_by_a_benchmark_narrow_its_technologies() {
        let plan = two_technologies("concurrency = [1]\nguests = [\"c3\", \"c1\"]").plan;
        let phases = plan.schedule(2);
        let technologies: Vec<&str> = phases.iter().map(|p| p.technology.as_str()).collect();
        assert_eq!(technologies, ["ctB", "ctA"]);
        assert_eq!(plan.guests_of_phase(&phases[1])[0].name(), "c1");
    }
}

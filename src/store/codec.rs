//! The compact form of samples: each record lists (series id, value) pairs as
//! LEB128 varints, ids as the gap from the previous id, values as the zigzag
//! difference from the series' previous value. Cumulative counters move a
//! little between ticks, so most values take one or two bytes. A keyframe
//! starts from empty state so that a reader can begin decoding there.

use crate::event::SeriesId;

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn get_varint(input: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn zigzag(delta: i64) -> u64 {
    ((delta << 1) ^ (delta >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Series ids are dense (the session hands them out from 0), so each
/// one's last value sits at its index: no hashing per value per tick,
/// which in a map was the recorder's largest cost in a profile of a 10 Hz
/// session. Ids past this (no session so far, or a damaged record) are
/// kept in a map instead, so that one bad number cannot claim a table of
/// gigabytes.
const TABLE_SERIES: usize = 1 << 20;

/// The state both ends keep: each series' last value since the last keyframe.
#[derive(Default)]
pub struct DeltaState {
    last: Vec<u64>,
    beyond: std::collections::HashMap<SeriesId, u64>,
}

impl DeltaState {
    /// Where `id`'s last value is kept (0 until it has one).
    fn slot(&mut self, id: SeriesId) -> &mut u64 {
        let index = id as usize;
        if index >= TABLE_SERIES {
            return self.beyond.entry(id).or_insert(0);
        }
        if index >= self.last.len() {
            self.last.resize(index + 1, 0);
        }
        &mut self.last[index]
    }

    pub fn reset(&mut self) {
        self.last.fill(0);
        self.beyond.clear();
    }

    pub fn encode(&mut self, values: &[(SeriesId, u64)], out: &mut Vec<u8>) {
        out.clear();
        put_varint(out, values.len() as u64);
        let mut previous_id = 0u64;
        for &(id, value) in values {
            // Ids need not be sorted; a backwards gap wraps, which decodes back.
            put_varint(out, zigzag(i64::from(id) - previous_id as i64));
            previous_id = u64::from(id);
            let base = std::mem::replace(self.slot(id), value);
            put_varint(out, zigzag(value.wrapping_sub(base) as i64));
        }
    }

    /// None for bytes that are not a record (a torn or foreign blob).
    pub fn decode(&mut self, mut input: &[u8]) -> Option<Vec<(SeriesId, u64)>> {
        let count = get_varint(&mut input)? as usize;
        let mut values = Vec::with_capacity(count.min(input.len()));
        let mut id = 0i64;
        for _ in 0..count {
            id += unzigzag(get_varint(&mut input)?);
            let id = SeriesId::try_from(id).ok()?;
            let delta = unzigzag(get_varint(&mut input)?);
            let last = self.slot(id);
            let value = last.wrapping_add(delta as u64);
            *last = value;
            values.push((id, value));
        }
        input.is_empty().then_some(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_across_wraps_and_decreases() {
        let ticks: Vec<Vec<(SeriesId, u64)>> = vec![
            vec![(0, 5), (1, u64::MAX), (7, 1 << 40)],
            vec![(0, 9), (1, 3), (7, (1 << 40) - 17), (9, 0)],
            vec![(9, 12), (0, 9)],
        ];
        let (mut writer, mut reader) = (DeltaState::default(), DeltaState::default());
        let mut blob = Vec::new();
        for tick in &ticks {
            writer.encode(tick, &mut blob);
            assert_eq!(reader.decode(&blob).as_ref(), Some(tick));
        }
    }

    #[test]
    fn small_changes_take_two_bytes_per_value() {
        let mut state = DeltaState::default();
        let mut blob = Vec::new();
        let first: Vec<_> = (0..100).map(|i| (i, 1_000_000 + u64::from(i))).collect();
        state.encode(&first, &mut blob);
        let second: Vec<_> = (0..100).map(|i| (i, 1_000_050 + u64::from(i))).collect();
        state.encode(&second, &mut blob);
        assert!(blob.len() <= 201, "{} bytes", blob.len());
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        let mut state = DeltaState::default();
        assert_eq!(state.decode(&[]), None);
        assert_eq!(state.decode(&[0xff; 12]), None);
        assert_eq!(state.decode(&[2, 0, 0]), None);
        // One value of series 2^30 (zigzag 2^31, as a varint): read, but
        // not by growing a table to that many.
        assert_eq!(
            state.decode(&[1, 0x80, 0x80, 0x80, 0x80, 0x08, 2]),
            Some(vec![(1 << 30, 1)])
        );
        assert!(state.last.len() < TABLE_SERIES);
    }
}

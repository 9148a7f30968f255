//! Snapshots: the whole graph in one file, written beside the target and renamed into place.
//!
//! Layout (little-endian): magic, format version, header, then per-slot arrays (ids, attributes,
//! levels, states, vectors), then the lists (count and ids, only the used part), then a CRC-32
//! of everything before it. `meta` is the caller's own blob (e.g. the last stored sequence
//! number the snapshot covers), returned unchanged by [`NativeHnsw::load`].

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};

use super::{Core, Metric, NativeHnsw, NativeParams, SlotState};
use crate::{IndexError, PointAttrs};

const MAGIC: &[u8; 8] = b"FSHNSW\0\x01";
const FORMAT: u32 = 1;
const NO_ENTRY: u32 = u32::MAX;
/// The code of [`SlotState::Free`] in a snapshot.
const FREE: u8 = SlotState::Free as u8;

/// Writer that checksums what passes through it.
struct Summing<W> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Summing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Reader that checksums what passes through it.
struct Checked<R> {
    inner: R,
    crc: crc32fast::Hasher,
}

impl<R: Read> Checked<R> {
    fn bytes<const N: usize>(&mut self) -> std::io::Result<[u8; N]> {
        let mut b = [0u8; N];
        self.inner.read_exact(&mut b)?;
        self.crc.update(&b);
        Ok(b)
    }

    fn u8(&mut self) -> std::io::Result<u8> {
        Ok(self.bytes::<1>()?[0])
    }

    fn u32(&mut self) -> std::io::Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn u64(&mut self) -> std::io::Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    fn f32s(&mut self, n: usize, out: &mut Vec<f32>) -> std::io::Result<()> {
        let mut raw = vec![0u8; n * 4];
        self.inner.read_exact(&mut raw)?;
        self.crc.update(&raw);
        out.extend(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        );
        Ok(())
    }

    fn u32s(&mut self, n: usize) -> std::io::Result<Vec<u32>> {
        let mut raw = vec![0u8; n * 4];
        self.inner.read_exact(&mut raw)?;
        self.crc.update(&raw);
        Ok(raw
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }
}

fn broken(path: &Path, reason: impl ToString) -> IndexError {
    IndexError::Snapshot {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

impl NativeHnsw {
    /// Writes the graph to `path` atomically (a temporary file, fsync, rename). Searches go on
    /// meanwhile; inserts and deletes wait until it is written.
    pub fn save(&self, path: &Path, meta: &[u8]) -> Result<(), IndexError> {
        let _exclusive = self.maintenance.write().map_err(|_| IndexError::Poisoned)?;
        let view = self.view()?;
        let core = &view.core;
        let tmp = path.with_extension("tmp");
        let io = |e: std::io::Error| broken(path, e);
        let file = File::create(&tmp).map_err(io)?;
        let mut w = Summing {
            inner: BufWriter::with_capacity(1 << 20, file),
            crc: crc32fast::Hasher::new(),
        };
        let p = &self.params;
        w.write_all(MAGIC).map_err(io)?;
        for word in [FORMAT, p.dim as u32, p.m as u32, meta.len() as u32] {
            w.write_all(&word.to_le_bytes()).map_err(io)?;
        }
        w.write_all(&[p.metric.code(), core.max_level])
            .map_err(io)?;
        w.write_all(&core.entry.unwrap_or(NO_ENTRY).to_le_bytes())
            .map_err(io)?;
        w.write_all(&(core.slots() as u64).to_le_bytes())
            .map_err(io)?;
        w.write_all(meta).map_err(io)?;
        for id in &core.ids {
            w.write_all(&id.to_le_bytes()).map_err(io)?;
        }
        for a in &core.attrs {
            w.write_all(&a.time.to_le_bytes()).map_err(io)?;
            w.write_all(&a.lat.to_le_bytes()).map_err(io)?;
            w.write_all(&a.lon.to_le_bytes()).map_err(io)?;
            w.write_all(&[a.source, a.confidence]).map_err(io)?;
            w.write_all(&a.incident.to_le_bytes()).map_err(io)?;
        }
        w.write_all(&core.levels).map_err(io)?;
        let states: Vec<u8> = core.states.iter().map(|s| *s as u8).collect();
        w.write_all(&states).map_err(io)?;
        let mut raw = Vec::with_capacity(core.vectors.len() * 4);
        raw.extend(core.vectors.iter().flat_map(|x| x.to_le_bytes()));
        w.write_all(&raw).map_err(io)?;
        let mut list = Vec::new();
        for slot in 0..core.slots() as u32 {
            for level in 0..=core.levels[slot as usize] {
                view.neighbours(slot, level, &mut list);
                w.write_all(&(list.len() as u32).to_le_bytes())
                    .map_err(io)?;
                raw.clear();
                raw.extend(list.iter().flat_map(|x| x.to_le_bytes()));
                w.write_all(&raw).map_err(io)?;
            }
        }
        let crc = w.crc.clone().finalize();
        let mut inner = w.inner;
        inner.write_all(&crc.to_le_bytes()).map_err(io)?;
        let file = inner.into_inner().map_err(|e| broken(path, e.error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }

    /// Reads a snapshot written by [`NativeHnsw::save`]. `params` supplies the settings a
    /// snapshot does not fix (ef, cut-off, threads); width, M and metric must match it.
    /// Returns the engine and the caller's `meta` blob.
    pub fn load(path: &Path, params: NativeParams) -> Result<(Self, Vec<u8>), IndexError> {
        let io = |e: std::io::Error| broken(path, e);
        let file = File::open(path).map_err(io)?;
        let file_len = file.metadata().map_err(io)?.len();
        Self::read_from(
            BufReader::with_capacity(1 << 20, file),
            file_len,
            path,
            params,
        )
    }

    /// Reads a snapshot held in memory, as [`NativeHnsw::load`] reads a file (the snapshot
    /// fuzz target's way in).
    pub fn from_bytes(bytes: &[u8], params: NativeParams) -> Result<(Self, Vec<u8>), IndexError> {
        Self::read_from(bytes, bytes.len() as u64, Path::new("<memory>"), params)
    }

    /// Reads `file_len` bytes of snapshot from `inner`; `path` names it in errors. Everything a
    /// search relies on is checked here, so a damaged file whose checksum happens to match
    /// (or one written by a broken build) is refused rather than panicking a later search.
    fn read_from(
        inner: impl Read,
        file_len: u64,
        path: &Path,
        params: NativeParams,
    ) -> Result<(Self, Vec<u8>), IndexError> {
        let io = |e: std::io::Error| broken(path, e);
        // Counts in the header are checked against the file's size before anything is sized by
        // them: the checksum is only known once everything has been read.
        let mut r = Checked {
            inner,
            crc: crc32fast::Hasher::new(),
        };
        if &r.bytes::<8>().map_err(io)? != MAGIC {
            return Err(broken(path, "not a FireSight HNSW snapshot"));
        }
        let format = r.u32().map_err(io)?;
        if format != FORMAT {
            return Err(broken(
                path,
                format!("format {format}, this build reads {FORMAT}"),
            ));
        }
        let (dim, m, meta_len) = (
            r.u32().map_err(io)? as usize,
            r.u32().map_err(io)? as usize,
            r.u32().map_err(io)? as usize,
        );
        let metric =
            Metric::from_code(r.u8().map_err(io)?).ok_or_else(|| broken(path, "unknown metric"))?;
        if (dim, m, metric) != (params.dim, params.m, params.metric) {
            return Err(broken(
                path,
                format!(
                    "holds dim {dim}, M {m}, {metric:?}; the settings ask for dim {}, M {}, {:?}",
                    params.dim, params.m, params.metric
                ),
            ));
        }
        if meta_len as u64 > file_len {
            return Err(broken(
                path,
                format!("metadata of {meta_len} bytes in a file of {file_len}"),
            ));
        }
        let engine = Self::new(params);
        let mut core = Core::empty();
        core.max_level = r.u8().map_err(io)?;
        if core.max_level > super::MAX_LEVEL {
            return Err(broken(
                path,
                format!("top level {} is above {}", core.max_level, super::MAX_LEVEL),
            ));
        }
        let entry = r.u32().map_err(io)?;
        core.entry = (entry != NO_ENTRY).then_some(entry);
        let slots = r.u64().map_err(io)?;
        // Each slot takes at least its id, attributes, level, state, vector and one link count.
        let per_slot = 8 + 26 + 1 + 1 + 4 * dim as u64 + 4;
        if slots > file_len / per_slot {
            return Err(broken(
                path,
                format!(
                    "the header claims {slots} slots; a file of {file_len} bytes holds at most {}",
                    file_len / per_slot
                ),
            ));
        }
        let slots = slots as usize;
        let mut meta = vec![0u8; meta_len];
        r.inner.read_exact(&mut meta).map_err(io)?;
        r.crc.update(&meta);
        core.ids.reserve_exact(slots);
        for _ in 0..slots {
            core.ids.push(r.u64().map_err(io)?);
        }
        core.attrs.reserve_exact(slots);
        for _ in 0..slots {
            core.attrs.push(PointAttrs {
                time: r.u64().map_err(io)? as i64,
                lat: f32::from_le_bytes(r.bytes().map_err(io)?),
                lon: f32::from_le_bytes(r.bytes().map_err(io)?),
                source: r.u8().map_err(io)?,
                confidence: r.u8().map_err(io)?,
                incident: r.u64().map_err(io)?,
            });
        }
        core.levels = vec![0u8; slots];
        r.inner.read_exact(&mut core.levels).map_err(io)?;
        r.crc.update(&core.levels);
        let mut states = vec![0u8; slots];
        r.inner.read_exact(&mut states).map_err(io)?;
        r.crc.update(&states);
        core.vectors.reserve_exact(slots * dim);
        r.f32s(slots * dim, &mut core.vectors).map_err(io)?;
        if let Some(at) = core.vectors.iter().position(|x| !x.is_finite()) {
            return Err(broken(
                path,
                format!(
                    "slot {} has a component that is not finite",
                    at / dim.max(1)
                ),
            ));
        }
        core.links0 = (0..slots * engine.stride0)
            .map(|_| AtomicU32::new(0))
            .collect();
        core.upper.reserve_exact(slots);
        for slot in 0..slots {
            let level = core.levels[slot];
            if level > super::MAX_LEVEL {
                return Err(broken(path, format!("slot {slot} has level {level}")));
            }
            core.upper.push(
                (0..level as usize * (m + 1))
                    .map(|_| AtomicU32::new(0))
                    .collect(),
            );
            for l in 0..=level {
                let count = r.u32().map_err(io)? as usize;
                if count > engine.capacity(l) {
                    return Err(broken(
                        path,
                        format!("slot {slot} level {l} lists {count} links"),
                    ));
                }
                let ids = r.u32s(count).map_err(io)?;
                if let Some(bad) = ids.iter().find(|&&id| id as usize >= slots) {
                    return Err(broken(
                        path,
                        format!("slot {slot} links to slot {bad} of {slots}"),
                    ));
                }
                // Compaction unlinks a slot before it frees it, and an insert may reuse a free
                // slot at any level: a link to one would lead a search to a list that is gone.
                if let Some(bad) = ids.iter().find(|&&id| states[id as usize] == FREE) {
                    return Err(broken(
                        path,
                        format!("slot {slot} level {l} links to slot {bad}, which is free"),
                    ));
                }
                // A search on level l reads the level-l list of every point it reaches there.
                if let Some(bad) = ids.iter().find(|&&id| core.levels[id as usize] < l) {
                    return Err(broken(
                        path,
                        format!(
                            "slot {slot} level {l} links to slot {bad}, which only reaches level {}",
                            core.levels[*bad as usize]
                        ),
                    ));
                }
                let cells = if l == 0 {
                    &core.links0[slot * engine.stride0..(slot + 1) * engine.stride0]
                } else {
                    let at = (l as usize - 1) * (m + 1);
                    &core.upper[slot][at..at + m + 1]
                };
                cells[0].store(count as u32, AtomicOrdering::Relaxed);
                for (cell, id) in cells[1..].iter().zip(ids) {
                    cell.store(id, AtomicOrdering::Relaxed);
                }
            }
        }
        let expected = r.crc.clone().finalize();
        let mut tail = [0u8; 4];
        r.inner.read_exact(&mut tail).map_err(io)?;
        if u32::from_le_bytes(tail) != expected {
            return Err(broken(path, "checksum mismatch: the file is damaged"));
        }
        core.states = Vec::with_capacity(slots);
        for (slot, code) in states.into_iter().enumerate() {
            let state = match code {
                0 => SlotState::Live,
                1 => SlotState::Deleted,
                2 => SlotState::Free,
                other => return Err(broken(path, format!("slot {slot} has state {other}"))),
            };
            match state {
                SlotState::Live => {
                    if let Some(first) = core.by_id.insert(core.ids[slot], slot as u32) {
                        return Err(broken(
                            path,
                            format!(
                                "slots {first} and {slot} both hold point {}",
                                core.ids[slot]
                            ),
                        ));
                    }
                }
                SlotState::Deleted => core.deleted += 1,
                SlotState::Free => core.free.push(slot as u32),
            }
            core.states.push(state);
        }
        if core.entry.is_some_and(|e| e as usize >= slots) {
            return Err(broken(path, "entry point outside the graph"));
        }
        // A search starts at the entry point on the top level.
        if let Some(e) = core.entry
            && (core.levels[e as usize] != core.max_level
                || core.states[e as usize] == SlotState::Free)
        {
            return Err(broken(
                path,
                format!(
                    "the entry point (a {:?} slot) reaches level {}, the graph's top is {}",
                    core.states[e as usize], core.levels[e as usize], core.max_level
                ),
            ));
        }
        *engine.core.write().map_err(|_| IndexError::Poisoned)? = core;
        Ok((engine, meta))
    }
}

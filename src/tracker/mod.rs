//! The incident tracker: the one definition of a fire incident, kept incrementally in the store.
//!
//! Two detections are linked when they lie within a link distance of each other —
//! `link_pixels` times the sum of their pixels' half sides, plus `link_buffer_km`, at most
//! `max_link_km` (`TrackerSettings::link_km`) — and at most
//! `max_inactive_days` apart. An incident is a connected group under that rule (single
//! linkage, as in NASA's FEDS and in FIRED), so the groups do not depend on the order detections
//! arrive in: a granule that arrives hours late joins, and may merge, the incidents it touches.
//! An incident is called `inc_` + the hex of its earliest detection; when two merge, the older
//! keeps its id and the other is kept as a redirect (`merged_into`), so an id once given always
//! leads to its fire. A detection older than every member it links to founds the survivor (it is
//! the older incident), so the live incidents are the same whatever the arrival order.
//!
//! Each batch is tracked inside the pipeline's writer lock and its writes join the batch's own
//! RocksDB write: incident records, the place-and-time index of tracked detections, member
//! lists, the clock (newest detection time seen: statuses are on data time, so a replay of an
//! archive gives the statuses it gave live) and alerts (`alerts.rs`).

pub mod alerts;
pub mod geometry;
pub mod incident;
pub mod outlook;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// The maps read for every detection (cells, incidents): foldhash instead of std's SipHash,
/// which was about 5 % of the storing thread. Seeded at random per process, so harder to aim
/// at one bucket than a fixed hash, though less resistant to that than SipHash.
type FastMap<K, V> = foldhash::HashMap<K, V>;

use serde::{Deserialize, Serialize};

pub use alerts::{Alert, AlertKind};
pub use incident::{DailyTotals, Incident, IncidentStatus, Member, Snapshot};
pub use outlook::{GrowthOutlook, IncidentWeather, OutlookModel, SharedOutlook};

use crate::config::TrackerSettings;
use crate::event::{FireEventV2, ImpactAssessment};
use crate::store::{Store, StoreError, StoreOp};

/// Cells of the place-and-time index, degrees (about 5.5 km of latitude).
const CELL_DEG: f64 = 0.05;
/// Longitude cells around the globe.
const LON_CELLS: i64 = (360.0 / CELL_DEG) as i64;
/// Longest redirect chain followed before the store is called corrupt.
const MAX_REDIRECTS: usize = 100_000;
/// FIRMS `type` values of static sources, with the flag each gets.
const STATIC_TYPES: [(i32, &str); 3] = [
    (1, "static_source_volcano"),
    (2, "static_source_other"),
    (3, "static_source_offshore"),
];
/// The flag of a pixel detected on many separate days.
pub const PERSISTENT_FLAG: &str = "persistent_hot_spot";

/// A tracked detection in the place-and-time index.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Point {
    /// The incident it joined (follow redirects for the incident now).
    incident: String,
    /// UTC day number.
    day: i64,
    member: Member,
}

/// The outlook rows of a batch, one per granule and incident, in granule order.
#[derive(Default)]
struct Outlooks {
    rows: Vec<[f32; outlook::OUTLOOK_FEATURES]>,
    /// Each row's incident, its time, and the detections (indices into the batch) it answers for.
    of: Vec<(String, i64, Vec<usize>)>,
}

/// What tracking a batch gave.
#[derive(Debug, Default)]
pub struct Tracked {
    /// Writes to commit with the batch.
    pub ops: Vec<StoreOp>,
    /// Alerts raised, in log order.
    pub alerts: Vec<Alert>,
    /// Every incident the batch changed (merged ones as redirects), by id.
    pub incidents: Vec<Incident>,
    /// Detections older than the inactivity horizon on arrival (still tracked).
    pub late: u64,
}

/// The tracker: its settings and growth-outlook model; its state is in the store.
#[derive(Clone)]
pub struct Tracker {
    settings: TrackerSettings,
    outlook: Option<SharedOutlook>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("settings", &self.settings)
            .field(
                "outlook",
                &self
                    .outlook
                    .as_ref()
                    .map(|m| format!("{}@{}", m.name(), m.version())),
            )
            .finish()
    }
}

/// The incidents of one batch, loaded from the store or new.
struct Working<'a> {
    store: &'a Store,
    incidents: FastMap<String, Incident>,
    dirty: BTreeSet<String>,
}

impl<'a> Working<'a> {
    fn new(store: &'a Store) -> Self {
        Self {
            store,
            incidents: FastMap::default(),
            dirty: BTreeSet::new(),
        }
    }

    fn load(&mut self, id: &str) -> Result<Option<&mut Incident>, StoreError> {
        if !self.incidents.contains_key(id) {
            let Some(bytes) = self.store.incident_record(id)? else {
                return Ok(None);
            };
            self.incidents.insert(id.to_owned(), decode(&bytes)?);
        }
        Ok(self.incidents.get_mut(id))
    }

    /// The incident `id` is now, following redirects.
    fn resolve(&mut self, id: &str) -> Result<String, StoreError> {
        let mut id = id.to_owned();
        for _ in 0..MAX_REDIRECTS {
            let Some(incident) = self.load(&id)? else {
                return Err(corrupt(format!(
                    "incident `{id}` is referenced but not stored"
                )));
            };
            match &incident.merged_into {
                Some(next) => id = next.clone(),
                None => return Ok(id),
            }
        }
        Err(corrupt(format!("redirects from `{id}` do not end")))
    }

    /// Merges `gone` into `survivor`.
    fn merge(&mut self, survivor: &str, gone: &str) {
        let (Some(mut lost), Some(mut kept)) =
            (self.incidents.remove(gone), self.incidents.remove(survivor))
        else {
            return;
        };
        kept.absorb(&mut lost);
        self.incidents.insert(gone.to_owned(), lost);
        self.incidents.insert(survivor.to_owned(), kept);
        self.dirty.insert(gone.to_owned());
        self.dirty.insert(survivor.to_owned());
    }
}

impl Tracker {
    /// A tracker with `settings`.
    pub fn new(settings: TrackerSettings) -> Self {
        Self {
            settings,
            outlook: None,
        }
    }

    /// This tracker, giving every incident a batch changes its growth outlook from `model`.
    pub fn with_outlook(mut self, model: SharedOutlook) -> Self {
        self.outlook = Some(model);
        self
    }

    /// The outlook model, if any.
    pub fn outlook(&self) -> Option<&SharedOutlook> {
        self.outlook.as_ref()
    }

    /// The settings.
    pub fn settings(&self) -> &TrackerSettings {
        &self.settings
    }

    /// Tracks a batch of new events: links each to its incident, sets its `correlation_id` and
    /// its static-source flags, and returns the writes and the alerts. Within the batch,
    /// detections are taken oldest first (then by id), so a whole granule founds its incident
    /// from its first pixel without renaming, and alerts are evaluated after each granule (the
    /// ingest sessions never split one across batches), so the same input gives the same alerts
    /// however it was chunked.
    pub fn track(
        &self,
        store: &Store,
        events: &mut [&mut FireEventV2],
    ) -> Result<Tracked, StoreError> {
        let s = &self.settings;
        let horizon = s.max_inactive_ms();
        let mut work = Working::new(store);
        let mut out = Tracked::default();
        let clock_before = store.tracker_clock()?;
        let mut clock = clock_before;
        let mut joined: Vec<String> = vec![String::new(); events.len()];
        let mut touched: Vec<(String, i64)> = Vec::new();
        let mut outlooks = Outlooks::default();
        let mut granule_from = 0;
        let mut anomalies: Vec<(String, i64, String, i64)> = Vec::new();
        let mut danger: Vec<(String, i64, f64, i64)> = Vec::new();

        let mut order: Vec<usize> = (0..events.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (&events[a], &events[b]);
            (x.detection_time, &x.event_id).cmp(&(y.detection_time, &y.event_id))
        });
        let near: Vec<Vec<(i32, i32)>> = events
            .iter()
            .map(|e| self.cells_near(e.location.latitude, e.location.longitude))
            .collect();
        // Tracked detections of earlier batches, read for a stretch of this batch's detections at
        // a time (at most one horizon long, so a batch spanning a year does not load a year), and
        // those of this batch so far.
        let mut stored: FastMap<(i32, i32), Vec<Point>> = FastMap::default();
        let mut stored_until = i64::MIN;
        let mut fresh: FastMap<(i32, i32), Vec<Point>> = FastMap::default();
        for (k, &i) in order.iter().enumerate() {
            if events[i].detection_time > stored_until {
                let t = events[i].detection_time;
                stored_until = t.saturating_add(horizon);
                let stretch = order[k..]
                    .iter()
                    .take_while(|&&j| events[j].detection_time <= stored_until)
                    .map(|&j| near[j].as_slice());
                stored = Self::points_near(
                    store,
                    stretch,
                    t.saturating_sub(horizon),
                    stored_until.saturating_add(horizon),
                )?;
            }
            let event = &mut *events[i];
            let member = member_of(event);
            let t = member.time_ms;
            if clock.is_some_and(|c| c.saturating_sub(t) > horizon) {
                out.late += 1;
            }
            clock = Some(clock.map_or(t, |c| c.max(t)));

            // The incidents the detection reaches, as its neighbours recorded them: a fire's
            // detections mostly name one or two, so each is resolved once, not once a neighbour.
            let mut reached: Vec<&str> = Vec::new();
            let mut same_pixel = false;
            let mut days: BTreeSet<i64> = BTreeSet::new();
            let same_pixel_km = member.scan_km.min(member.track_km) / 2.0;
            let (from, to) = (t.saturating_sub(horizon), t.saturating_add(horizon));
            for cell in &near[i] {
                let nearby = [stored.get(cell), fresh.get(cell)]
                    .into_iter()
                    .flatten()
                    .flatten();
                for point in nearby.filter(|p| p.member.time_ms >= from && p.member.time_ms <= to) {
                    let other = &point.member;
                    let d = crate::geo::distance_km(member.lat, member.lon, other.lat, other.lon);
                    let reach = s.link_km(member.reach_km(), other.reach_km());
                    if d > reach {
                        continue;
                    }
                    reached.push(&point.incident);
                    if d <= same_pixel_km {
                        same_pixel = true;
                        days.insert(point.day);
                    }
                }
            }

            reached.sort_unstable();
            reached.dedup();
            let mut linked: BTreeSet<String> = BTreeSet::new();
            for id in reached {
                linked.insert(work.resolve(id)?);
            }

            let day = t.div_euclid(86_400_000);
            days.insert(day);
            let persistent = days.len() >= s.persistent_min_days as usize;
            let mut flags: Vec<&str> = STATIC_TYPES
                .iter()
                .filter(|(ty, _)| event.fire_characteristics.detection_type == Some(*ty))
                .map(|(_, flag)| *flag)
                .collect();
            if persistent {
                flags.push(PERSISTENT_FLAG);
            }
            if !flags.is_empty() {
                let assessment = event
                    .impact_assessment
                    .get_or_insert_with(|| ImpactAssessment {
                        anomalies: Vec::new(),
                    });
                for flag in &flags {
                    if !assessment.anomalies.iter().any(|a| a == flag) {
                        assessment.anomalies.push((*flag).to_owned());
                    }
                }
            }

            // The oldest of the linked incidents survives; the detection founds a new one when
            // it is older than all of them (or links to none).
            let mut oldest: Option<(i64, String, String)> = None;
            for id in &linked {
                if let Some(incident) = work.load(id)? {
                    let key = (incident.first_ms, incident.founder.clone(), id.clone());
                    if oldest
                        .as_ref()
                        .is_none_or(|o| (key.0, &key.1) < (o.0, &o.1))
                    {
                        oldest = Some(key);
                    }
                }
            }
            let survivor = match oldest {
                Some((first, founder, id))
                    if (first, founder.as_str()) <= (t, member.event_id.as_str()) =>
                {
                    id
                }
                _ => {
                    let founded = Incident::founded_by(&member);
                    let id = founded.id.clone();
                    work.incidents.insert(id.clone(), founded);
                    id
                }
            };
            for id in linked.iter().filter(|id| **id != survivor) {
                work.merge(&survivor, id);
            }
            let new_area = if same_pixel {
                0.0
            } else {
                member.scan_km * member.track_km
            };
            let confidence = event.fire_characteristics.confidence.rank();
            if let Some(incident) = work.load(&survivor)? {
                incident.add(&member, new_area, confidence, !flags.is_empty());
                incident.weather =
                    IncidentWeather::newer(incident.weather.take(), IncidentWeather::of(event));
            }
            work.dirty.insert(survivor.clone());

            let snapshot = incident::snapshot_of(t, member.lon);
            touched.push((survivor.clone(), snapshot));
            if let Some(assessment) = &event.impact_assessment {
                for anomaly in &assessment.anomalies {
                    if anomaly == "fire_under_high_humidity" || anomaly == "fire_in_rain" {
                        anomalies.push((survivor.clone(), snapshot, anomaly.clone(), t));
                    }
                }
            }
            if let Some(p) = event
                .ml_predictions
                .iter()
                .flatten()
                .find(|p| p.name == "p_fire")
                .map(|p| p.value)
            {
                danger.push((survivor.clone(), snapshot, p, t));
            }
            let point = Point {
                incident: survivor.clone(),
                day,
                member,
            };
            let cell = cell_of(point.member.lat, point.member.lon);
            out.ops.push(StoreOp::incident_point(
                cell,
                t,
                &point.member.event_id,
                encode(&point)?,
            ));
            out.ops.push(StoreOp::incident_member(
                &survivor,
                t,
                &point.member.event_id,
                encode(&point.member)?,
            ));
            fresh.entry(cell).or_default().push(point);
            joined[i] = survivor;
            // Alerts are evaluated after each granule (the detections of one acquisition
            // minute), not once per batch: where a batch happens to end does not change them.
            let granule_ends = order
                .get(k + 1)
                .is_none_or(|&next| events[next].detection_time != t);
            if granule_ends {
                self.outlook_rows(&mut work, &order[granule_from..=k], &joined, &mut outlooks)?;
                granule_from = k + 1;
                self.raise(
                    &mut work,
                    std::mem::take(&mut touched),
                    std::mem::take(&mut anomalies),
                    std::mem::take(&mut danger),
                    &mut out,
                )?;
            }
        }

        self.forecast(&mut work, outlooks, events);
        for (event, id) in events.iter_mut().zip(&joined) {
            event.correlation_id = Some(work.resolve(id)?);
        }
        for id in &work.dirty {
            if let Some(incident) = work.incidents.get(id) {
                out.ops
                    .push(StoreOp::incident_record(id, encode(incident)?));
                out.incidents.push(incident.clone());
            }
        }
        if clock != clock_before
            && let Some(clock) = clock
        {
            out.ops.push(StoreOp::tracker_clock(clock));
        }
        Ok(out)
    }

    /// Tracked detections stored with a time in `[from_ms, to_ms]` in every cell of `near`, by
    /// cell: read in one pass and decoded once (each detection then takes its own window).
    fn points_near<'n>(
        store: &Store,
        near: impl Iterator<Item = &'n [(i32, i32)]>,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<FastMap<(i32, i32), Vec<Point>>, StoreError> {
        let mut cells: Vec<(i32, i32)> = near.flatten().copied().collect();
        cells.sort_unstable();
        cells.dedup();
        let stored = store.incident_points(&cells, from_ms, to_ms)?;
        cells
            .into_iter()
            .zip(stored)
            .map(|(cell, bytes)| {
                let points = bytes.iter().map(|b| decode(b)).collect::<Result<_, _>>()?;
                Ok((cell, points))
            })
            .collect()
    }

    /// At a granule's end: the outlook row of each incident its detections joined, as the
    /// incident stands then, with those detections. Taken per granule, like alerts, so that
    /// where a batch ends does not change any event's outlook.
    fn outlook_rows(
        &self,
        work: &mut Working<'_>,
        granule: &[usize],
        joined: &[String],
        out: &mut Outlooks,
    ) -> Result<(), StoreError> {
        if self.outlook.is_none() {
            return Ok(());
        }
        let mut by_incident: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for &i in granule {
            by_incident
                .entry(work.resolve(&joined[i])?)
                .or_default()
                .push(i);
        }
        for (id, members) in by_incident {
            if let Some(incident) = work.incidents.get(&id) {
                out.rows
                    .push(outlook::outlook_features(incident, incident.last_ms));
                out.of.push((id, incident.last_ms, members));
            }
        }
        Ok(())
    }

    /// Runs the outlook model once over the batch's rows: each row's answer goes into the
    /// `ml_predictions` of its granule's detections, and an incident keeps its last row's answer
    /// (merged incidents keep none). A model that fails leaves outlooks as they were, and says so.
    fn forecast(&self, work: &mut Working<'_>, rows: Outlooks, events: &mut [&mut FireEventV2]) {
        let Some(model) = &self.outlook else {
            return;
        };
        if rows.rows.is_empty() {
            return;
        }
        let values = match model.predict(&rows.rows) {
            Ok(values) if values.len() == rows.rows.len() => values,
            Ok(values) => {
                tracing::warn!(
                    rows = rows.rows.len(),
                    values = values.len(),
                    "The growth-outlook model answered a different number of rows; outlooks not updated."
                );
                return;
            }
            Err(reason) => {
                tracing::warn!(%reason, "The growth-outlook model failed; outlooks not updated.");
                return;
            }
        };
        for ((id, as_of_ms, members), value) in rows.of.into_iter().zip(values) {
            let outlook = value.is_finite().then(|| GrowthOutlook {
                model: model.name().to_owned(),
                version: model.version().to_owned(),
                p_growth_24h: f64::from(value),
                as_of_ms,
            });
            for i in members {
                if let Some(o) = &outlook {
                    events[i]
                        .ml_predictions
                        .get_or_insert_with(Vec::new)
                        .push(o.prediction());
                }
            }
            if let Some(incident) = work.incidents.get_mut(&id)
                && incident.merged_into.is_none()
            {
                incident.outlook = outlook;
            }
        }
    }

    /// Late weather: the incidents of `events` (detections just joined again to weather that
    /// arrived after them) take the weather of their newest detection that has any, and those
    /// whose weather changed get their outlook again, as of their newest detection. The
    /// detections' own outlooks stay as their granules gave them. Returns the writes.
    pub fn reweather(
        &self,
        store: &Store,
        events: &[&FireEventV2],
    ) -> Result<Vec<StoreOp>, StoreError> {
        let mut work = Working::new(store);
        for event in events {
            let Some(id) = &event.correlation_id else {
                continue;
            };
            if work.load(id)?.is_none() {
                continue;
            }
            let id = work.resolve(id)?;
            let fresh = IncidentWeather::of(event);
            if let Some(incident) = work.incidents.get_mut(&id) {
                let newer = IncidentWeather::newer(incident.weather.clone(), fresh);
                if newer != incident.weather {
                    incident.weather = newer;
                    work.dirty.insert(id);
                }
            }
        }
        let mut rows = Outlooks::default();
        if self.outlook.is_some() {
            for id in &work.dirty {
                if let Some(incident) = work.incidents.get(id) {
                    rows.rows
                        .push(outlook::outlook_features(incident, incident.last_ms));
                    rows.of.push((id.clone(), incident.last_ms, Vec::new()));
                }
            }
        }
        self.forecast(&mut work, rows, &mut []);
        let mut ops = Vec::with_capacity(work.dirty.len());
        for id in &work.dirty {
            if let Some(incident) = work.incidents.get(id) {
                ops.push(StoreOp::incident_record(id, encode(incident)?));
            }
        }
        Ok(ops)
    }

    /// Evaluates the alert rules for every incident the batch touched, oldest id first.
    fn raise(
        &self,
        work: &mut Working<'_>,
        touched: Vec<(String, i64)>,
        anomalies: Vec<(String, i64, String, i64)>,
        danger: Vec<(String, i64, f64, i64)>,
        out: &mut Tracked,
    ) -> Result<(), StoreError> {
        let mut snapshots: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
        for (id, snapshot) in touched {
            snapshots
                .entry(work.resolve(&id)?)
                .or_default()
                .insert(snapshot);
        }
        let mut rules: HashMap<String, Vec<(i64, String, i64)>> = HashMap::new();
        let mut seen: HashSet<(String, i64, String)> = HashSet::new();
        for (id, snapshot, anomaly, t) in anomalies {
            let id = work.resolve(&id)?;
            if seen.insert((id.clone(), snapshot, anomaly.clone())) {
                rules.entry(id).or_default().push((snapshot, anomaly, t));
            }
        }
        let mut dangers: HashMap<String, BTreeMap<i64, (f64, i64)>> = HashMap::new();
        for (id, snapshot, p, t) in danger {
            let best = dangers
                .entry(work.resolve(&id)?)
                .or_default()
                .entry(snapshot)
                .or_insert((p, t));
            if p > best.0 {
                *best = (p, t);
            }
        }
        for (id, touched) in snapshots {
            let Some(incident) = work.incidents.get_mut(&id) else {
                continue;
            };
            let touched: Vec<i64> = touched.into_iter().collect();
            let rule_list = rules.remove(&id).unwrap_or_default();
            let danger_list: Vec<(i64, f64, i64)> = dangers
                .remove(&id)
                .unwrap_or_default()
                .into_iter()
                .map(|(snapshot, (p, t))| (snapshot, p, t))
                .collect();
            let raised = alerts::evaluate(
                &alerts::Raise {
                    incident,
                    touched: &touched,
                    anomalies: &rule_list,
                    danger: &danger_list,
                },
                &self.settings,
            );
            for (key, mut alert) in raised {
                alert.seq = work.store.next_alert_seq();
                incident.alerted.insert(key);
                out.ops.push(StoreOp::alert(alert.seq, encode(&alert)?));
                out.alerts.push(alert);
            }
        }
        Ok(())
    }

    /// The index cells within `max_link_km` of a point (wrapping at the antimeridian).
    fn cells_near(&self, lat: f64, lon: f64) -> Vec<(i32, i32)> {
        let reach = self.settings.max_link_km;
        let (cy, cx) = cell_of(lat, lon);
        let rows = (reach / (CELL_DEG * 110.574)).ceil() as i32;
        let widest = lat.abs().min(89.0) + (rows as f64 + 1.0) * CELL_DEG;
        let lon_km = CELL_DEG * 111.320 * widest.min(89.9).to_radians().cos();
        let cols = ((reach / lon_km).ceil() as i64).min(LON_CELLS / 2) as i32;
        let mut cells = Vec::with_capacity(((2 * rows + 1) * (2 * cols + 1)) as usize);
        for dy in -rows..=rows {
            for dx in -cols..=cols {
                let x = (i64::from(cx) + i64::from(dx) + LON_CELLS / 2).rem_euclid(LON_CELLS)
                    - LON_CELLS / 2;
                cells.push((cy + dy, x as i32));
            }
        }
        cells.sort_unstable();
        cells.dedup();
        cells
    }

    /// An incident as stored, following redirects when `follow` is set.
    pub fn incident(
        &self,
        store: &Store,
        id: &str,
        follow: bool,
    ) -> Result<Option<Incident>, StoreError> {
        let mut work = Working::new(store);
        let id = if follow {
            match work.load(id)? {
                None => return Ok(None),
                Some(_) => work.resolve(id)?,
            }
        } else {
            id.to_owned()
        };
        Ok(work.load(&id)?.cloned())
    }

    /// Every stored incident record, redirects included.
    pub fn incidents(&self, store: &Store) -> Result<Vec<Incident>, StoreError> {
        store
            .incident_records()?
            .iter()
            .map(|b| decode(b))
            .collect()
    }

    /// An incident's members, oldest first (its own and those of every incident it absorbed).
    pub fn members(&self, store: &Store, incident: &Incident) -> Result<Vec<Member>, StoreError> {
        let mut members: Vec<Member> = Vec::with_capacity(incident.detections as usize);
        for id in std::iter::once(&incident.id).chain(&incident.absorbed) {
            for bytes in store.incident_members(id)? {
                members.push(decode(&bytes)?);
            }
        }
        members.sort_by(|a, b| (a.time_ms, &a.event_id).cmp(&(b.time_ms, &b.event_id)));
        Ok(members)
    }

    /// The tracker's clock: the newest detection time it has seen.
    pub fn clock(&self, store: &Store) -> Result<Option<i64>, StoreError> {
        store.tracker_clock()
    }

    /// Alerts from sequence `from` on, up to `limit`.
    pub fn alerts_from(
        &self,
        store: &Store,
        from: u64,
        limit: usize,
    ) -> Result<Vec<Alert>, StoreError> {
        store
            .alerts_from(from, limit)?
            .into_iter()
            .map(|(_, bytes)| decode(&bytes))
            .collect()
    }
}

/// The members of the latest snapshot of `incident` that lie on its perimeter: the active fire
/// line (pixels within one pixel of the hull's boundary).
pub fn fire_line<'a>(incident: &Incident, members: &'a [Member]) -> Vec<&'a Member> {
    let Some(last) = incident.snapshots.last() else {
        return Vec::new();
    };
    let perimeter = incident.perimeter(None);
    members
        .iter()
        .filter(|m| incident::snapshot_of(m.time_ms, m.lon) == last.snapshot)
        .filter(|m| {
            geometry::distance_to_boundary_km(&perimeter, [m.lon, m.lat]) <= 2.0 * m.reach_km()
        })
        .collect()
}

fn member_of(event: &FireEventV2) -> Member {
    let c = &event.fire_characteristics;
    // A pixel is at most about 5 km across (MODIS at the swath edge); a larger size is an error
    // in the file, and must not widen the search.
    let side = |km: f64| {
        if km.is_finite() {
            km.clamp(0.0, 6.0)
        } else {
            1.0
        }
    };
    Member {
        event_id: event.event_id.clone(),
        time_ms: event.detection_time,
        lat: event.location.latitude,
        lon: event.location.longitude,
        scan_km: side(c.scan_km),
        track_km: side(c.track_km),
        frp_mw: if c.frp_mw.is_finite() { c.frp_mw } else { 0.0 },
    }
}

fn cell_of(lat: f64, lon: f64) -> (i32, i32) {
    (
        (lat / CELL_DEG).floor() as i32,
        (lon / CELL_DEG).floor() as i32,
    )
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    Ok(serde_json::to_vec(value)?)
}

fn corrupt(reason: String) -> StoreError {
    StoreError::Corrupt {
        cf: "incidents",
        reason,
    }
}

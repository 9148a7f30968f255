//! The incident tracker's tables: incident records, tracked detections by place and time, each
//! incident's members, the tracker's clock, and the alert log. Values are the tracker's JSON;
//! the store lays out the keys and keeps the alert sequence.

use std::sync::atomic::Ordering;

use super::keys::{cell_time_key, incident_prefix, member_key};
use super::{Family, Store, StoreError, StoreOp, decode_u64};

const META_TRACKER_CLOCK: &[u8] = b"tracker_clock";

impl Store {
    /// One incident record (JSON), redirects of merged incidents included.
    pub fn incident_record(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(Family::Incidents, id.as_bytes())
    }

    /// Every incident record (JSON), in id order.
    pub fn incident_records(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self
            .scan(Family::Incidents, &[], &[], usize::MAX)?
            .into_iter()
            .map(|(_, value)| value)
            .collect())
    }

    /// Tracked detections (JSON) with a time in `[from_ms, to_ms]`, for each of `cells` in the
    /// order given.
    pub fn incident_points(
        &self,
        cells: &[(i32, i32)],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Vec<Vec<u8>>>, StoreError> {
        self.cells_between(Family::IncidentPoints, cells, from_ms, to_ms)
    }

    /// The members (JSON) stored under one incident id, oldest first.
    pub fn incident_members(&self, id: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let prefix = incident_prefix(id);
        Ok(self
            .scan(Family::IncidentMembers, &prefix, &prefix, usize::MAX)?
            .into_iter()
            .map(|(_, value)| value)
            .collect())
    }

    /// The newest detection time the tracker has seen, ms.
    pub fn tracker_clock(&self) -> Result<Option<i64>, StoreError> {
        self.get(Family::Meta, META_TRACKER_CLOCK)?
            .map(|v| decode_u64(Family::Meta, &v).map(|u| u as i64))
            .transpose()
    }

    /// Up to `limit` alerts (sequence, JSON) from sequence `from` on.
    pub fn alerts_from(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.scan(Family::Alerts, &[], &from.to_be_bytes(), limit)?
            .into_iter()
            .map(|(key, value)| Ok((decode_u64(Family::Alerts, &key)?, value)))
            .collect()
    }

    /// The sequence the next alert will get.
    pub fn peek_alert_seq(&self) -> u64 {
        self.next_alert.load(Ordering::Acquire)
    }

    /// A fresh alert sequence number. Numbers of a batch that fails are not reused: the log
    /// has gaps, never repeats.
    pub fn next_alert_seq(&self) -> u64 {
        self.next_alert.fetch_add(1, Ordering::AcqRel)
    }
}

impl StoreOp {
    /// The write that stores an incident record.
    pub fn incident_record(id: &str, record: Vec<u8>) -> Self {
        Self::put(Family::Incidents, id.as_bytes(), record)
    }

    /// The write that indexes a tracked detection by place and time.
    pub fn incident_point(cell: (i32, i32), time_ms: i64, event_id: &str, point: Vec<u8>) -> Self {
        Self::put(
            Family::IncidentPoints,
            cell_time_key(cell, time_ms, event_id),
            point,
        )
    }

    /// The write that lists a detection among an incident's members.
    pub fn incident_member(incident: &str, time_ms: i64, event_id: &str, member: Vec<u8>) -> Self {
        Self::put(
            Family::IncidentMembers,
            member_key(incident, time_ms, event_id),
            member,
        )
    }

    /// The write that moves the tracker's clock.
    pub fn tracker_clock(ms: i64) -> Self {
        Self::put(Family::Meta, META_TRACKER_CLOCK, (ms as u64).to_be_bytes())
    }

    /// The write that appends an alert to the log.
    pub fn alert(seq: u64, alert: Vec<u8>) -> Self {
        Self::put(Family::Alerts, seq.to_be_bytes(), alert)
    }
}

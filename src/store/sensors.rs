//! Sensor readings, by sensor and time and by 0.1° cell and time (the join with detections).

use super::keys::cell_time_key;
use super::{Family, Store, StoreError, StoreOp, decode_json};
use crate::event::SensorReading;

impl Store {
    /// Stores sensor readings keyed by sensor and time (a replay overwrites, never duplicates).
    pub fn put_sensor_readings(&self, readings: &[SensorReading]) -> Result<(), StoreError> {
        self.put_sensor_readings_with(readings, &[])
    }

    /// [`Store::put_sensor_readings`] with `extra` writes in the same atomic batch.
    pub fn put_sensor_readings_with(
        &self,
        readings: &[SensorReading],
        extra: &[StoreOp],
    ) -> Result<(), StoreError> {
        let mut batch = self.batch_of(extra)?;
        for r in readings {
            let mut key = r.sensor_id.as_bytes().to_vec();
            key.push(0);
            key.extend_from_slice(&r.observed_at.timestamp_millis().to_be_bytes());
            let json = serde_json::to_vec(r)?;
            batch.put_cf(
                self.cf(Family::SensorCells)?,
                cell_time_key(
                    crate::geo::sensor_cell(r.latitude, r.longitude),
                    r.observed_at.timestamp_millis(),
                    &r.sensor_id,
                ),
                &json,
            );
            batch.put_cf(self.cf(Family::Sensors)?, key, json);
        }
        Ok(self.commit(batch)?)
    }

    /// Sensor readings observed within `[from_ms, to_ms]` in any of `cells` (0.1° cells), cell
    /// by cell in the order given.
    pub fn sensor_readings_in(
        &self,
        cells: &[(i32, i32)],
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<SensorReading>, StoreError> {
        self.cells_between(Family::SensorCells, cells, from_ms, to_ms)?
            .into_iter()
            .flatten()
            .map(|value| decode_json(Family::SensorCells, &value))
            .collect()
    }
}

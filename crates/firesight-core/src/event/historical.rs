//! A historical incident from an agency's records (CAL FIRE's exports today): what the store
//! keeps and search renders.

use serde::{Deserialize, Serialize};

/// One historical incident, as kept in the store and rendered for search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoricalIncident {
    /// CAL FIRE's incident UUID.
    pub id: String,
    /// Incident name, e.g. "Camp Fire".
    pub name: String,
    /// Counties it burned in.
    pub counties: Vec<String>,
    /// Location text, e.g. "Seven miles north of Big Creek".
    pub location: String,
    /// Acres burned, when reported.
    pub acres: Option<f64>,
    /// Start, ms since the epoch.
    pub started_ms: Option<i64>,
    /// Extinguished, ms since the epoch.
    pub extinguished_ms: Option<i64>,
    /// Latitude, when reported and plausible.
    pub latitude: Option<f64>,
    /// Longitude, when reported and plausible.
    pub longitude: Option<f64>,
    /// Administrative unit.
    pub admin_unit: String,
    /// CAL FIRE's own description and keywords (older export only).
    pub description: String,
    /// Structures destroyed.
    pub structures_destroyed: Option<u64>,
    /// Fatalities.
    pub fatalities: Option<u64>,
}

impl HistoricalIncident {
    /// Fills fields this record lacks from `other` (the same incident from the other export).
    pub fn merge(&mut self, other: HistoricalIncident) {
        let text = |a: &mut String, b: String| {
            if a.is_empty() {
                *a = b;
            }
        };
        text(&mut self.name, other.name);
        text(&mut self.location, other.location);
        text(&mut self.admin_unit, other.admin_unit);
        text(&mut self.description, other.description);
        // The exports sometimes name different counties for one incident (Thomas: Ventura in
        // one, Santa Barbara in the other): keep both.
        for county in other.counties {
            if !self
                .counties
                .iter()
                .any(|c| c.eq_ignore_ascii_case(&county))
            {
                self.counties.push(county);
            }
        }
        self.acres = self.acres.or(other.acres);
        self.started_ms = self.started_ms.or(other.started_ms);
        self.extinguished_ms = self.extinguished_ms.or(other.extinguished_ms);
        self.latitude = self.latitude.or(other.latitude);
        self.longitude = self.longitude.or(other.longitude);
        self.structures_destroyed = self.structures_destroyed.or(other.structures_destroyed);
        self.fatalities = self.fatalities.or(other.fatalities);
    }
}

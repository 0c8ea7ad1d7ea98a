//! Counters of registry traffic since the process started: manifest pulls and pushes by
//! outcome, bytes pulled and pushed, upload sessions started and finished. Prometheus exports
//! them under Quay's names (`quay_registry_image_pulls_total`, ...); recording one is a relaxed
//! atomic add, so the hot paths pay nothing more.
//!
//! Outcomes are HTTP status codes because that is how Quay labels them; the `registry` crate,
//! which maps errors to statuses, records pulls and pushes, while the upload pipeline here
//! records bytes and sessions as they happen.

use std::sync::atomic::{AtomicU64, Ordering};

use types::media_type::MANIFEST_TYPES;

use crate::Registry;

/// Status codes 100..=599, one slot each.
const STATUSES: usize = 500;

/// How a manifest was asked for (Quay's `ref` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PullRef {
    /// By tag: `tag`.
    Tag,
    /// By digest: `manifest`.
    Digest,
}

impl PullRef {
    /// Quay's label value.
    pub fn label(self) -> &'static str {
        match self {
            PullRef::Tag => "tag",
            PullRef::Digest => "manifest",
        }
    }
}

pub(crate) struct TrafficCounters {
    /// Manifest pulls by [`PullRef`] and status.
    pulls: [Box<[AtomicU64]>; 2],
    pulled_bytes: AtomicU64,
    /// Successful manifest pushes (201) by media type, in [`MANIFEST_TYPES`] order.
    pushed: [AtomicU64; MANIFEST_TYPES.len()],
    /// Refused manifest pushes by status (Quay labels them with an empty media type).
    push_failures: Box<[AtomicU64]>,
    pushed_bytes: AtomicU64,
    uploads_started: AtomicU64,
    uploads_completed: AtomicU64,
}

impl Default for TrafficCounters {
    fn default() -> Self {
        let slots = || (0..STATUSES).map(|_| AtomicU64::new(0)).collect();
        TrafficCounters {
            pulls: [slots(), slots()],
            pulled_bytes: AtomicU64::new(0),
            pushed: Default::default(),
            push_failures: slots(),
            pushed_bytes: AtomicU64::new(0),
            uploads_started: AtomicU64::new(0),
            uploads_completed: AtomicU64::new(0),
        }
    }
}

/// The slot of a status code; None for codes outside 100..=599.
fn slot(status: u16) -> Option<usize> {
    let index = usize::from(status).checked_sub(100)?;
    (index < STATUSES).then_some(index)
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// A snapshot of the traffic counters; outcomes that never happened are left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrafficStats {
    /// (how the manifest was named, status, count).
    pub pulls: Vec<(PullRef, u16, u64)>,
    pub pulled_bytes: u64,
    /// (status, media type — empty for refused pushes, count).
    pub pushes: Vec<(u16, &'static str, u64)>,
    pub pushed_bytes: u64,
    pub uploads_started: u64,
    pub uploads_completed: u64,
}

impl Registry {
    /// Counts a manifest GET or HEAD answered with `status`.
    pub fn record_pull(&self, by: PullRef, status: u16) {
        let index = match by {
            PullRef::Tag => 0,
            PullRef::Digest => 1,
        };
        if let Some(s) = slot(status) {
            add(&self.inner.traffic.pulls[index][s], 1);
        }
    }

    /// Counts blob bytes sent (or redirected to) for a download.
    pub fn record_pulled_bytes(&self, bytes: u64) {
        add(&self.inner.traffic.pulled_bytes, bytes);
    }

    /// Counts a manifest PUT answered with `status`; `media_type` is the stored manifest's on
    /// success.
    pub fn record_push(&self, status: u16, media_type: Option<&str>) {
        let traffic = &self.inner.traffic;
        let stored = media_type.and_then(|m| MANIFEST_TYPES.iter().position(|t| *t == m));
        match stored {
            Some(index) if status == 201 => add(&traffic.pushed[index], 1),
            _ => {
                if let Some(s) = slot(status) {
                    add(&traffic.push_failures[s], 1);
                }
            }
        }
    }

    pub(crate) fn record_pushed_bytes(&self, bytes: u64) {
        add(&self.inner.traffic.pushed_bytes, bytes);
    }

    pub(crate) fn record_upload_started(&self) {
        add(&self.inner.traffic.uploads_started, 1);
    }

    pub(crate) fn record_upload_completed(&self) {
        add(&self.inner.traffic.uploads_completed, 1);
    }

    /// The traffic counters so far.
    pub fn traffic_stats(&self) -> TrafficStats {
        let t = &self.inner.traffic;
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let statuses = |counters: &[AtomicU64]| -> Vec<(u16, u64)> {
            counters
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    let count = get(n);
                    (count > 0).then(|| (i as u16 + 100, count))
                })
                .collect()
        };
        let mut pulls = Vec::new();
        for (by, counters) in [(PullRef::Tag, &t.pulls[0]), (PullRef::Digest, &t.pulls[1])] {
            pulls.extend(
                statuses(counters)
                    .into_iter()
                    .map(|(status, n)| (by, status, n)),
            );
        }
        let mut pushes: Vec<(u16, &'static str, u64)> = MANIFEST_TYPES
            .iter()
            .zip(&t.pushed)
            .filter_map(|(media_type, n)| {
                let count = get(n);
                (count > 0).then_some((201, *media_type, count))
            })
            .collect();
        pushes.extend(
            statuses(&t.push_failures)
                .into_iter()
                .map(|(status, n)| (status, "", n)),
        );
        TrafficStats {
            pulls,
            pulled_bytes: get(&t.pulled_bytes),
            pushes,
            pushed_bytes: get(&t.pushed_bytes),
            uploads_started: get(&t.uploads_started),
            uploads_completed: get(&t.uploads_completed),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn status_slots_cover_http_codes_only() {
        assert_eq!(super::slot(100), Some(0));
        assert_eq!(super::slot(599), Some(499));
        assert_eq!(super::slot(99), None);
        assert_eq!(super::slot(600), None);
    }
}

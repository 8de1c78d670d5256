//! Time: a millisecond-precision UTC [`Timestamp`] and the injected [`Clock`].
//!
//! Every operation whose outcome depends on time takes `now` from a `Clock` rather than
//! reading the system clock itself, so expiry and retry delays can be tested exactly.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// A UTC instant with millisecond precision, serialized as ISO-8601 with a `Z` suffix
/// (`2025-01-01T00:00:00.000Z`).
///
/// Millisecond precision is enforced on construction so that every backend stores and
/// returns the same value.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The instant `millis` milliseconds after the Unix epoch, if representable.
    pub fn from_millis(millis: i64) -> Option<Self> {
        Utc.timestamp_millis_opt(millis).single().map(Self)
    }

    /// Milliseconds since the Unix epoch.
    pub fn as_millis(&self) -> i64 {
        self.0.timestamp_millis()
    }

    /// The instant as a chrono `DateTime`.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// `self + duration`, saturating at the largest representable instant.
    pub fn add(&self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let target = self.as_millis().saturating_add(millis);
        Self::from_millis(target)
            .unwrap_or(Self(DateTime::<Utc>::MAX_UTC))
            .truncated()
    }

    /// `self - duration`, saturating at the smallest representable instant.
    pub fn sub(&self, duration: Duration) -> Self {
        let millis = i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        let target = self.as_millis().saturating_sub(millis);
        Self::from_millis(target)
            .unwrap_or(Self(DateTime::<Utc>::MIN_UTC))
            .truncated()
    }

    /// The non-negative time from `earlier` to `self` (zero if `earlier` is later).
    pub fn since(&self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.as_millis() - earlier.as_millis()).unwrap_or(0))
    }

    fn truncated(self) -> Self {
        Self::from_millis(self.as_millis()).unwrap_or(self)
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(value: DateTime<Utc>) -> Self {
        Self(value).truncated()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Timestamp {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DateTime::parse_from_rfc3339(s.trim())
            .map(|t| Self::from(t.with_timezone(&Utc)))
            .map_err(|_| {
                Error::invalid(
                    "timestamp",
                    format!("{s:?} is not an ISO-8601 date-time such as 2025-01-01T00:00:00.000Z"),
                )
            })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// In API documents: an ISO-8601 instant in UTC with milliseconds.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .examples([serde_json::json!("2026-01-31T09:30:00.000Z")])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Timestamp {}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The source of "now" for every time-dependent decision.
///
/// Contract: `now` never goes backwards for a given clock instance.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from(Utc::now())
    }
}

/// A clock that only moves when told to; for tests and simulations.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward by `duration`.
    pub fn advance(&self, duration: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now = now.add(duration);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A [`Duration`](std::time::Duration) as whole milliseconds on the wire.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_like_javascript_to_iso_string() {
        let t = Timestamp::from_millis(1_735_689_600_123).unwrap();
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2025-01-01T00:00:00.123Z\""
        );
        let back: Timestamp = serde_json::from_str("\"2025-01-01T00:00:00.123Z\"").unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn truncates_to_milliseconds_and_accepts_offsets() {
        let t: Timestamp = "2025-01-01T01:00:00.123456+01:00".parse().unwrap();
        assert_eq!(t.to_string(), "2025-01-01T00:00:00.123Z");
    }

    #[test]
    fn rejects_garbage_with_a_typed_error() {
        assert!(matches!(
            "yesterday".parse::<Timestamp>(),
            Err(Error::InvalidInput { .. })
        ));
    }

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::new(Timestamp::from_millis(0).unwrap());
        assert_eq!(clock.now().as_millis(), 0);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.now().as_millis(), 2_000);
    }
}

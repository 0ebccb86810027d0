//! Events of `system.events`: health, errors, performance.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{event_type, streams::SYSTEM};

/// Health states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Healthy,
    Degraded,
    Unhealthy,
}

/// `system.service.health`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SystemServiceHealth {
    pub service_name: String,
    pub status: HealthStatus,
    pub response_time_ms: f64,
    pub memory_usage_mb: f64,
    pub cpu_usage_percent: f64,
    pub error_rate: f64,
}
event_type!(SystemServiceHealth, "system.service.health", SYSTEM);

/// `system.error.critical`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SystemErrorCritical {
    pub service_name: String,
    pub error_type: String,
    pub error_message: String,
    pub stack_trace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub requires_immediate_attention: bool,
}
event_type!(SystemErrorCritical, "system.error.critical", SYSTEM);

/// `system.performance.degraded`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SystemPerformanceDegraded {
    pub metric_name: String,
    pub current_value: f64,
    pub threshold_value: f64,
    pub affected_services: Vec<String>,
    pub suggested_actions: Vec<String>,
    /// True when this reports the figure back under its threshold (the end of a
    /// crossing reported earlier); absent or false for a crossing.
    #[serde(default, skip_serializing_if = "is_false")]
    pub recovered: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}
event_type!(
    SystemPerformanceDegraded,
    "system.performance.degraded",
    SYSTEM
);

/// `system.bench.ping`: the no-op event of `strategist bench` and of tests; no
/// production pool handles it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SystemBenchPing {
    pub seq: u64,
    /// When it was published, microseconds since the epoch (for latency).
    pub sent_at_us: i64,
    /// Padding to a chosen payload size.
    #[serde(default)]
    pub pad: String,
}
event_type!(SystemBenchPing, "system.bench.ping", SYSTEM);

//! The verifier's policy applied to an authenticated report: debug, measurement, TCB floor.

use super::error::SnpError;
use super::types::{SnpPolicy, SnpReport};

/// Applies `policy` in a fixed order: debug, then measurement, then TCB floor.
pub(crate) fn check(report: &SnpReport, policy: &SnpPolicy) -> Result<(), SnpError> {
    // A debuggable guest's memory is readable by the host, so nothing it attests is secret.
    if report.debug && !policy.allow_debug {
        return Err(SnpError::Debug);
    }
    if let Some(expected) = policy.measurement
        && expected != report.measurement
    {
        return Err(SnpError::MeasurementMismatch {
            expected: hex::encode(expected),
            actual: hex::encode(report.measurement),
        });
    }
    if let Some(floor) = policy.min_tcb
        && !report.reported_tcb.meets(&floor)
    {
        return Err(SnpError::TcbBelowFloor { reported: report.reported_tcb, floor });
    }
    Ok(())
}

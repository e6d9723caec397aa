//! A scanner group: the balancer over its servers and their active health checks.

pub mod balancer;
pub mod health;

//! The application's sagas, one file each, on the engine's saga runtime.

pub mod file_processing;

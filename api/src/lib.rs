//! api library

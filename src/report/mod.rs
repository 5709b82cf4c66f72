//! The reporter stage: one report row per input row. (Being built.)

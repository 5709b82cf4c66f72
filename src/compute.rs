//! The compute stage: rows to candidates on rayon. (Being built: issue 2.)

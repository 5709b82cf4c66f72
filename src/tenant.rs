//! The tenant file: Graph-shaped users, deleted users and domains. (Being built: issue 3.)

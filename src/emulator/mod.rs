//! The local Microsoft Graph emulator. (Being built: issue 3.)

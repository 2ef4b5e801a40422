//! `hubswap-client`: the embeddable device client (issue "Device client"). Not built yet; it
//! will drive [`hubswap_spec`] from a tokio task.

//! The one integration-test binary: real servers on 127.0.0.1:0, spoken to over raw TCP.

mod support;

mod apps;
mod browser;
mod c_guest;
mod cli;
mod cluster;
mod components;
mod crash;
mod dynamic_components;
mod fairness;
mod guests;
mod hotswap;
mod http;
mod inline;
mod loops;
mod preinit;
mod sandbox;
mod services;
mod static_files;
mod tidy;
mod tiers;

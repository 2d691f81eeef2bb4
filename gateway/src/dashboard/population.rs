//! Population figures as the dashboard's population panel draws them: prevalence of each
//! measure in each borough, small numbers suppressed. The aggregate service builds the
//! [`PopulationView`] and provides it through [`PopulationFigures`], set with
//! [`super::DashboardFeeds::set_population`]; the dashboard never counts patients itself.
//!
//! `GET /dashboard/api/population` answers the view as JSON:
//! `{"generated", "threshold", "measures": [{"id", "title"}], "boroughs": [{"id", "name"}],
//! "cells": [{"measure", "borough", "numerator", "denominator", "prevalence_per_1000",
//! "suppressed"}]}`; a suppressed cell's three numbers are `null`.

use serde::{Deserialize, Serialize};

/// The small-number threshold the empty view names (the region's rule: counts below it are
/// not shown).
pub const SMALL_NUMBER_THRESHOLD: u32 = 5;

/// The population figures at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PopulationView {
    /// When the figures were computed (RFC 3339), `None` when there are none yet.
    pub generated: Option<String>,
    /// Counts below this are suppressed.
    pub threshold: u32,
    /// What is measured, in the order to show it.
    pub measures: Vec<Measure>,
    /// Where, in the order to show it.
    pub boroughs: Vec<Borough>,
    /// One figure per measure and borough.
    pub cells: Vec<Cell>,
}

/// One measure (a condition whose prevalence is counted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measure {
    /// Stable id, for example `diabetes`.
    pub id: String,
    /// What the page calls it, for example `Diabetes`.
    pub title: String,
}

/// One borough.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Borough {
    /// Stable id, for example `borough-00`.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// The figure of one measure in one borough.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// The measure's id.
    pub measure: String,
    /// The borough's id.
    pub borough: String,
    /// Patients with the condition (`None` when suppressed).
    pub numerator: Option<u64>,
    /// Patients counted (`None` when suppressed).
    pub denominator: Option<u64>,
    /// `numerator` per 1,000 of `denominator` (`None` when suppressed).
    pub prevalence_per_1000: Option<f64>,
    /// Whether the figure is withheld as a small number.
    pub suppressed: bool,
}

impl PopulationView {
    /// No figures yet.
    pub fn empty() -> Self {
        Self {
            generated: None,
            threshold: SMALL_NUMBER_THRESHOLD,
            measures: Vec::new(),
            boroughs: Vec::new(),
            cells: Vec::new(),
        }
    }

    /// The view with no number left in any cell marked suppressed, whoever built it.
    pub fn without_suppressed_numbers(mut self) -> Self {
        for cell in self.cells.iter_mut().filter(|c| c.suppressed) {
            cell.numerator = None;
            cell.denominator = None;
            cell.prevalence_per_1000 = None;
        }
        self
    }
}

/// What the dashboard asks of the aggregate service.
pub trait PopulationFigures: Send + Sync {
    /// The figures now.
    fn view(&self) -> PopulationView;
}

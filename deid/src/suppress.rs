//! Small-number suppression of aggregate tables, with complementary suppression so that no
//! suppressed count can be worked back out from the published ones.
//!
//! A table is a list of cells (counts) and the groups that tie them together: each [`Group`]
//! says that one cell (the total) is the sum of others (the parts). Suppression runs in three
//! steps, repeated until nothing changes:
//!
//! 1. Primary: every cell below the threshold is suppressed, zero included. A published zero
//!    says that nobody in the cell has the characteristic, which is itself a disclosure about
//!    everyone in the row (and a zero beside a small total gives the total's whole breakdown),
//!    so zeros get the same protection as ones.
//! 2. Complementary, per group: a group with exactly one suppressed member (total or part)
//!    would give that member away by subtraction, so a second member is suppressed: the smallest
//!    published part (the least information lost), or the total if every part is suppressed.
//! 3. Across groups: a suppressed cell can still be derivable by combining several groups
//!    (in a two-way table, a suppressed cell that is the only link between two blocks of
//!    suppressed cells). Each suppressed cell is checked against the whole system of sums by
//!    exact elimination; one found derivable gets a further complement from one of its groups.
//!
//! Every round suppresses at least one more cell or stops, so it ends after at most as many
//! rounds as there are cells. What is not protected against: bounds (a reader knows a suppressed
//! primary cell lies in `0..threshold`, which can narrow a complement's range), and tables
//! released separately whose groups this table does not state.

/// Cells and the sums that relate them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The counts, each published unless suppressed.
    pub cells: Vec<u64>,
    /// The sums that hold between cells.
    pub groups: Vec<Group>,
}

/// `cells[total] = sum(cells[parts])`. Indices out of range are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The cell holding the group's total, if the total is itself a cell of the table. `None`
    /// means the total is known to readers some other way (published elsewhere, e.g. a
    /// population count): it is then treated as published and can never be suppressed here.
    pub total: Option<usize>,
    /// The cells that add up to the total.
    pub parts: Vec<usize>,
}

impl Group {
    fn members(&self, n: usize) -> impl Iterator<Item = usize> + '_ {
        self.total.into_iter().chain(self.parts.iter().copied()).filter(move |i| *i < n)
    }
}

/// The cells of `table` as published: `None` for a suppressed cell. Cells below `threshold` are
/// always suppressed, and further cells as needed so that none of them can be derived from the
/// published cells and the table's sums (see the module documentation).
pub fn suppress(table: &Table, threshold: u64) -> Vec<Option<u64>> {
    suppress_with(table, threshold, &[])
}

/// [`suppress`], with the cells `forced` suppressed from the start whatever their counts (a
/// cell that another published table would give away, such as a count of patients *with* a
/// condition next to a published count of patients, where the two differ by less than the
/// threshold), and complements found for them as for any other.
pub fn suppress_with(table: &Table, threshold: u64, forced: &[usize]) -> Vec<Option<u64>> {
    let cells = &table.cells;
    let mut hidden: Vec<bool> = cells.iter().map(|c| *c < threshold).collect();
    for i in forced {
        if let Some(h) = hidden.get_mut(*i) {
            *h = true;
        }
    }
    loop {
        if table.groups.iter().any(|g| complement_within(g, cells, &mut hidden)) {
            continue;
        }
        let Some(exposed) = derivable(table, &hidden) else { break };
        if !complement_across(table, exposed, &mut hidden) {
            // Nothing left to suppress beside it: the table's own structure gives it away (a
            // group of one part whose total is published elsewhere).
            break;
        }
    }
    cells.iter().zip(&hidden).map(|(c, h)| (!h).then_some(*c)).collect()
}

/// Suppresses a second member of `group` if exactly one is suppressed; true if it did.
fn complement_within(group: &Group, cells: &[u64], hidden: &mut [bool]) -> bool {
    let n = cells.len();
    if group.members(n).filter(|i| hidden[*i]).count() != 1 {
        return false;
    }
    let part = group.parts.iter().copied().filter(|i| *i < n && !hidden[*i]).min_by_key(|i| (cells[*i], *i));
    let total = group.total.filter(|t| *t < n && !hidden[*t]);
    match part.or(total) {
        Some(i) => {
            hidden[i] = true;
            true
        }
        None => false,
    }
}

/// Suppresses the smallest published cell sharing a group with `exposed`; true if it did.
fn complement_across(table: &Table, exposed: usize, hidden: &mut [bool]) -> bool {
    let n = table.cells.len();
    let choice = table
        .groups
        .iter()
        .filter(|g| g.members(n).any(|i| i == exposed))
        .flat_map(|g| g.members(n))
        .filter(|i| !hidden[*i])
        .min_by_key(|i| (table.cells[*i], *i));
    match choice {
        Some(i) => {
            hidden[i] = true;
            true
        }
        None => false,
    }
}

/// The first suppressed cell whose value follows from the published cells and the sums.
///
/// The unknowns are the suppressed cells; each group is one linear equation in them. A cell is
/// determined exactly when, in the reduced row echelon form of the equations' coefficients, it is
/// a pivot whose row has no other unknown left. The elimination is done modulo two primes (exact
/// arithmetic with no overflow); a cell is taken as determined if either says so, so a rare
/// accident of the modulus can only suppress more, never less, unless it strikes both.
fn derivable(table: &Table, hidden: &[bool]) -> Option<usize> {
    let unknowns: Vec<usize> = (0..hidden.len()).filter(|i| hidden[*i]).collect();
    if unknowns.is_empty() {
        return None;
    }
    let column = |cell: usize| unknowns.iter().position(|u| *u == cell);
    let rows: Vec<Vec<i64>> = table
        .groups
        .iter()
        .map(|g| {
            let mut row = vec![0i64; unknowns.len()];
            for p in g.parts.iter().filter(|p| **p < hidden.len()) {
                if let Some(c) = column(*p) {
                    row[c] += 1;
                }
            }
            if let Some(c) = g.total.filter(|t| *t < hidden.len()).and_then(column) {
                row[c] -= 1;
            }
            row
        })
        .collect();
    [PRIME_A, PRIME_B].iter().flat_map(|p| determined(&rows, unknowns.len(), *p)).min().map(|c| unknowns[c])
}

const PRIME_A: u64 = (1 << 61) - 1;
const PRIME_B: u64 = 998_244_353;

/// The columns of `rows` (coefficients mod `p`) whose unknown the equations determine.
fn determined(rows: &[Vec<i64>], width: usize, p: u64) -> Vec<usize> {
    let reduce = |v: i64| (i128::from(v).rem_euclid(i128::from(p))) as u64;
    let mut m: Vec<Vec<u64>> = rows.iter().map(|r| r.iter().map(|v| reduce(*v)).collect()).collect();
    let mul = |a: u64, b: u64| ((u128::from(a) * u128::from(b)) % u128::from(p)) as u64;
    let sub = |a: u64, b: u64| if a >= b { a - b } else { a + p - b };
    let inverse = |a: u64| {
        let (mut base, mut exp, mut acc) = (a, p - 2, 1u64);
        while exp > 0 {
            if exp & 1 == 1 {
                acc = mul(acc, base);
            }
            base = mul(base, base);
            exp >>= 1;
        }
        acc
    };
    let mut pivots: Vec<(usize, usize)> = Vec::new();
    let mut rank = 0;
    for col in 0..width {
        let Some(r) = (rank..m.len()).find(|r| m[*r][col] != 0) else { continue };
        m.swap(rank, r);
        let inv = inverse(m[rank][col]);
        for v in m[rank].iter_mut() {
            *v = mul(*v, inv);
        }
        let pivot = m[rank].clone();
        for (r, row) in m.iter_mut().enumerate() {
            let factor = row[col];
            if r != rank && factor != 0 {
                for (v, pv) in row.iter_mut().zip(&pivot) {
                    *v = sub(*v, mul(factor, *pv));
                }
            }
        }
        pivots.push((rank, col));
        rank += 1;
    }
    pivots
        .into_iter()
        .filter(|(row, col)| (0..width).all(|c| c == *col || m[*row][c] == 0))
        .map(|(_, col)| col)
        .collect()
}

/// A `rows` x `cols` table with its margins, for stratified counts (borough x age band, borough x
/// sex, ...). `counts` is row-major (`counts[r * cols + c]`); missing counts are taken as 0 (and
/// so suppressed), extra ones ignored.
///
/// Layout of [`Table::cells`]:
/// - `r * cols + c`: the cell of row `r`, column `c`;
/// - `rows * cols + r`: the total of row `r`;
/// - `rows * cols + rows + c`: the total of column `c`;
/// - `rows * cols + rows + cols`: the grand total.
///
/// Groups: each row (its cells add to its row total), each column (to its column total), the row
/// totals to the grand total, and the column totals to the grand total. The margins are computed
/// from the counts, so they always agree.
pub fn two_way(rows: usize, cols: usize, counts: &[u64]) -> Table {
    let cell = |r: usize, c: usize| counts.get(r * cols + c).copied().unwrap_or(0);
    let body = rows * cols;
    let mut cells: Vec<u64> = (0..body).map(|i| cell(i / cols.max(1), i % cols.max(1))).collect();
    let row_totals: Vec<u64> = (0..rows).map(|r| (0..cols).map(|c| cell(r, c)).sum()).collect();
    let col_totals: Vec<u64> = (0..cols).map(|c| (0..rows).map(|r| cell(r, c)).sum()).collect();
    let grand: u64 = row_totals.iter().sum();
    cells.extend(&row_totals);
    cells.extend(&col_totals);
    cells.push(grand);
    let (row_total, col_total, grand_total) = (|r| body + r, |c| body + rows + c, body + rows + cols);
    let mut groups: Vec<Group> = (0..rows)
        .map(|r| Group { total: Some(row_total(r)), parts: (0..cols).map(|c| r * cols + c).collect() })
        .collect();
    groups.extend(
        (0..cols)
            .map(|c| Group { total: Some(col_total(c)), parts: (0..rows).map(|r| r * cols + c).collect() }),
    );
    groups.push(Group { total: Some(grand_total), parts: (0..rows).map(row_total).collect() });
    groups.push(Group { total: Some(grand_total), parts: (0..cols).map(col_total).collect() });
    Table { cells, groups }
}

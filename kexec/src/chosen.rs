//! The device tree the next kernel reads its command line and initramfs from: the running
//! kernel's blob with `/chosen` rewritten.

use liminix_fdt::{self as fdt, Dtb};

use crate::KexecError;

const INITRD_START: &str = "linux,initrd-start";
const INITRD_END: &str = "linux,initrd-end";

/// `blob` with `/chosen/bootargs` = `command_line` and the initramfs at `initrd` (physical
/// start and end), or no initramfs properties at all when there is none.
pub fn edit(
    blob: &[u8],
    command_line: &str,
    initrd: Option<(u64, u64)>,
) -> Result<Vec<u8>, KexecError> {
    let mut tree: Dtb = fdt::read(blob)?;
    fdt::set_chosen(&mut tree, "bootargs", command_line)?;
    // The kernel reads these with as many cells as the property has; one cell when it fits
    // is what bootloaders write for 32-bit machines.
    let cells = fdt::cells(&tree.root, "/", "#address-cells").unwrap_or(1);
    let chosen = tree.root.child_mut("chosen");
    chosen
        .props
        .retain(|(n, _)| n != INITRD_START && n != INITRD_END);
    if let Some((start, end)) = initrd {
        let cells = if end > u64::from(u32::MAX) { 2 } else { cells };
        chosen.set(
            INITRD_START,
            fdt::encode("initrd start", start, cells, "/chosen")?,
        );
        chosen.set(
            INITRD_END,
            fdt::encode("initrd end", end, cells, "/chosen")?,
        );
    }
    Ok(fdt::write(&tree)?)
}

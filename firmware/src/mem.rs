//! The images' memory routines: `memcpy` and `memset` and the ARM EABI
//! entry points the compiler calls for them (`__aeabi_memcpy*`,
//! `__aeabi_memclr*`, `__aeabi_memset*`), in place of compiler-builtins'
//! (whose are weak symbols, so these win at link time).
//!
//! compiler-builtins' are written for long copies: a misaligned word copy,
//! and a separate body for each aligned entry point, about 1.5 KB of flash
//! together on thumbv7em. What the monitor copies is short (a request's
//! bytes, a reply's pieces, 64-byte UART chunks), so a word loop when both
//! ends are word-aligned and a byte loop otherwise does as well here in
//! 90 bytes (`firmware/README.md` has the figures).
//!
//! In assembly (Thumb-1, so one text for the Cortex-M0 and the M4): a Rust
//! function named `memcpy` is one the compiler knows the meaning of, and it
//! turns the body of one into a call to itself.
//!
//! `memcpy(dst r0, src r1, n r2) -> dst` (the ranges do not overlap, C's
//! contract), `memset(dst r0, c r1, n r2) -> dst`, and the EABI forms
//! `__aeabi_memcpy{,4,8}(dst, src, n)` (aliases of `memcpy`: the `4` and
//! `8` forms only promise alignment), `__aeabi_memset{,4,8}(dst, n, c)`
//! and `__aeabi_memclr{,4,8}(dst, n)`.

core::arch::global_asm!(
    ".syntax unified",
    ".section .text.qmp_firmware_mem,\"ax\",%progbits",
    ".p2align 1",
    ".global memcpy",
    ".type memcpy,%function",
    ".thumb_func",
    "memcpy:",
    "    push {{r0, lr}}",
    // Both pointers word-aligned: whole words first.
    "    mov r3, r0",
    "    orrs r3, r1",
    "    lsls r3, r3, #30",
    "    bne 3f",
    "1:  subs r2, #4",
    "    bcc 2f",
    "    ldr r3, [r1]",
    "    str r3, [r0]",
    "    adds r1, #4",
    "    adds r0, #4",
    "    b 1b",
    "2:  adds r2, #4",
    // The rest (all of it when misaligned), a byte at a time.
    "3:  cmp r2, #0",
    "    beq 5f",
    "4:  ldrb r3, [r1]",
    "    strb r3, [r0]",
    "    adds r1, #1",
    "    adds r0, #1",
    "    subs r2, #1",
    "    bne 4b",
    "5:  pop {{r0, pc}}",
    ".size memcpy, . - memcpy",
    "",
    ".global memset",
    ".type memset,%function",
    ".thumb_func",
    "memset:",
    "    push {{r0, lr}}",
    // The byte in each of r1's four bytes.
    "    movs r3, #255",
    "    ands r1, r3",
    "    lsls r3, r1, #8",
    "    orrs r1, r3",
    "    lsls r3, r1, #16",
    "    orrs r1, r3",
    "    mov r3, r0",
    "    lsls r3, r3, #30",
    "    bne 3f",
    "1:  subs r2, #4",
    "    bcc 2f",
    "    str r1, [r0]",
    "    adds r0, #4",
    "    b 1b",
    "2:  adds r2, #4",
    "3:  cmp r2, #0",
    "    beq 5f",
    "4:  strb r1, [r0]",
    "    adds r0, #1",
    "    subs r2, #1",
    "    bne 4b",
    "5:  pop {{r0, pc}}",
    ".size memset, . - memset",
    "",
    // (dst, n, c) -> memset(dst, c, n)
    ".global __aeabi_memset",
    ".type __aeabi_memset,%function",
    ".thumb_func",
    "__aeabi_memset:",
    "    mov r3, r1",
    "    mov r1, r2",
    "    mov r2, r3",
    "    b memset",
    ".size __aeabi_memset, . - __aeabi_memset",
    "",
    // (dst, n) -> memset(dst, 0, n)
    ".global __aeabi_memclr",
    ".type __aeabi_memclr,%function",
    ".thumb_func",
    "__aeabi_memclr:",
    "    mov r2, r1",
    "    movs r1, #0",
    "    b memset",
    ".size __aeabi_memclr, . - __aeabi_memclr",
    "",
    ".global __aeabi_memcpy",
    ".global __aeabi_memcpy4",
    ".global __aeabi_memcpy8",
    ".thumb_set __aeabi_memcpy, memcpy",
    ".thumb_set __aeabi_memcpy4, memcpy",
    ".thumb_set __aeabi_memcpy8, memcpy",
    ".global __aeabi_memset4",
    ".global __aeabi_memset8",
    ".thumb_set __aeabi_memset4, __aeabi_memset",
    ".thumb_set __aeabi_memset8, __aeabi_memset",
    ".global __aeabi_memclr4",
    ".global __aeabi_memclr8",
    ".thumb_set __aeabi_memclr4, __aeabi_memclr",
    ".thumb_set __aeabi_memclr8, __aeabi_memclr",
    ".text",
);

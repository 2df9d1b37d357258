#!/usr/bin/env bash
# The guest image every vmbench technology boots, built from Debian packages
# (`vmbench image build` runs this script; so does the testbed), and prints
# the folder that holds it:
#
#   root/        the guest's root tree: a debootstrap'ed Debian with
#                openssh-server and the benchmark tools, /sbin/vmbench-init
#                as its init (namespace and container guests use the tree)
#   root.img     the same tree as an ext4 disk (QEMU, UML and libvirt guests)
#   vmlinux      the Debian kernel, uncompressed (QEMU boots it as PVH)
#   initrd.cpio  busybox and the virtio and ext4 modules; mounts the root disk
#   inputs       what the build was made from (suite, mirror, packages, kernel)
#
# Nothing is installed on the host: the kernel package is downloaded and
# unpacked. The build is cached by the hash of its inputs (this script, the
# kernel version, the suite, the mirror and the packages) in
# $VMBENCH_IMAGE_CACHE (default /var/cache/vmbench/images), so a second run
# only prints the folder. Each step leaves a mark when done, and packages
# already downloaded are kept: a build that was interrupted goes on from the
# step it was in. Progress goes to stderr as `image: step N/4 ...` lines.
set -euo pipefail

CACHE=${VMBENCH_IMAGE_CACHE:-/var/cache/vmbench/images}
SUITE=${VMBENCH_IMAGE_SUITE:-bookworm}
MIRROR=${VMBENCH_IMAGE_MIRROR:-http://deb.debian.org/debian}
PACKAGES=openssh-server,iproute2,procps,tini,iperf3,sysbench,fio,bonnie++,stress-ng,libssl3
# In the order they load; each one's dependencies come first (see modules()).
MODULES="virtio_ring virtio virtio_pci virtio_net virtio_blk crc16 mbcache jbd2 crc32c_generic ext4"

# Only the folder goes to standard output; what the tools print goes to stderr.
exec 3>&1 1>&2

say() { echo "image: $*" >&2; }
die() { say "$*"; exit 1; }

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap)"
for tool in debootstrap mkfs.ext4 busybox python3 apt-get apt-cache dpkg-deb flock; do
  command -v "$tool" >/dev/null || die "missing $tool: apt-get install debootstrap e2fsprogs busybox-static python3"
done
[[ $(busybox 2>&1 | head -1) ]] || die "busybox does not run"
file_is_static() { ! ldd "$1" >/dev/null 2>&1; }
file_is_static "$(command -v busybox)" || die "busybox must be static: apt-get install busybox-static"

kernel_package=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[[ -n $kernel_package ]] || die "no Debian kernel package found (apt-get update?)"
kernel_version=$(apt-cache policy "$kernel_package" | awk '/Candidate:/ {print $2}')
key=$(
  {
    # This script's own text: the file it runs from (the testbed), or the
    # string `bash -c` was given (vmbench, which writes no file).
    if [[ -n ${BASH_EXECUTION_STRING:-} ]]; then
      printf '%s' "$BASH_EXECUTION_STRING"
    else
      cat "$0"
    fi
    echo "$kernel_package $kernel_version $SUITE $MIRROR $PACKAGES $MODULES"
  } | sha256sum | cut -c1-16
)
out=$CACHE/image-$key
mkdir -p "$CACHE"
# Sessions and tests may build the same image at once: one builds, the
# others wait for it and then find it done.
exec 9>"$out.lock"
if ! flock -n 9; then
  say "another build of this image is under way; waiting for it"
  flock 9
fi
if [[ -f $out/done ]]; then
  echo "$out" >&3
  exit 0
fi
# Not removed on failure: the next run goes on from the last finished step.
mkdir -p "$out" "$CACHE/debs"
work=$out/work
mkdir -p "$work"
started=$SECONDS
step() { say "step $1/4: $2 ($((SECONDS - started)) s so far)"; }
say "building $out from Debian $SUITE ($MIRROR): kernel $kernel_package $kernel_version; packages ${PACKAGES//,/ }; about 3 minutes the first time"

if [[ ! -f $out/vmlinux ]]; then
step 1 "kernel: $kernel_package $kernel_version"
rm -rf "$work/kernel" "$work"/linux-image-*.deb
(cd "$work" && apt-get download -q "$kernel_package" 2>/dev/null) || die "apt-get download $kernel_package failed"
dpkg-deb -x "$work"/linux-image-*.deb "$work/kernel"
release=${kernel_package#linux-image-}
python3 - "$work/kernel/boot/vmlinuz-$release" "$out/vmlinux.part" <<'PYEOF'
# The bzImage's payload is an xz stream; its uncompressed ELF carries the
# PVH entry note QEMU boots without firmware.
import lzma, sys
data = open(sys.argv[1], "rb").read()
start = data.find(b"\xfd7zXZ\x00")
if start < 0:
    sys.exit("no xz payload in " + sys.argv[1])
vmlinux = lzma.LZMADecompressor().decompress(data[start:])
if vmlinux[:4] != b"\x7fELF":
    sys.exit("the payload is not an ELF kernel")
open(sys.argv[2], "wb").write(vmlinux)
PYEOF
mv "$out/vmlinux.part" "$out/vmlinux"
else
  step 1 "kernel: done before"
fi

if [[ ! -f $out/initrd.cpio ]]; then
step 2 "initramfs"
release=${kernel_package#linux-image-}
[[ -d $work/kernel ]] || {
  (cd "$work" && apt-get download -q "$kernel_package" 2>/dev/null) || die "apt-get download $kernel_package failed"
  dpkg-deb -x "$work"/linux-image-*.deb "$work/kernel"
}
initrd=$work/initrd
rm -rf "$initrd"
mkdir -p "$initrd"/{bin,dev,proc,sys,newroot,modules}
cp "$(command -v busybox)" "$initrd/bin/busybox"
python3 - "$work/kernel/lib/modules/$release" "$initrd/modules" $MODULES <<'PYEOF'
# Copies the modules and their dependencies (read from each module's own
# .modinfo, as depmod would) and writes load order: dependencies first.
import os, shutil, sys
tree, dest, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
paths = {}
for root, _, files in os.walk(tree):
    for f in files:
        if f.endswith(".ko"):
            paths[f[:-3].replace("-", "_")] = os.path.join(root, f)
def depends(name):
    data = open(paths[name], "rb").read()
    for field in data.split(b"\0"):
        if field.startswith(b"depends="):
            return [d.replace("-", "_") for d in field[8:].decode().split(",") if d]
    return []
order = []
def visit(name):
    if name in order:
        return
    if name not in paths:
        return  # built into this kernel
    for dep in depends(name):
        visit(dep)
    order.append(name)
for name in wanted:
    visit(name)
for name in order:
    shutil.copy(paths[name], os.path.join(dest, name + ".ko"))
open(os.path.join(dest, "order"), "w").write("\n".join(order) + "\n")
PYEOF
cat >"$initrd/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do
  insmod /modules/$m.ko || echo "initrd: insmod $m failed"
done
for _ in $(seq 100); do
  [ -b /dev/vda ] && break
  sleep 0.05
done
mount -t ext4 /dev/vda /newroot || { echo "initrd: cannot mount /dev/vda"; poweroff -f; }
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot /sbin/vmbench-init
EOF
chmod 755 "$initrd/init"
(cd "$initrd" && find . | busybox cpio -o -H newc 2>/dev/null) >"$out/initrd.cpio.part"
mv "$out/initrd.cpio.part" "$out/initrd.cpio"
else
  step 2 "initramfs: done before"
fi

root=$out/root
if [[ ! -f $out/root.done ]]; then
step 3 "root tree: debootstrap $SUITE (packages kept in $CACHE/debs; the log in $work/debootstrap.log)"
# An interrupted debootstrap can leave its /proc and /sys mounted in the
# half-made tree; they go before the tree does.
findmnt -rn -o TARGET | awk -v root="$root/" 'index($0, root) == 1' | sort -r | xargs -r -n1 umount -l
rm -rf "$root"
# The downloaded packages may be shared with builds of other images.
flock "$CACHE/debs/.lock" \
  debootstrap --variant=minbase --cache-dir="$CACHE/debs" --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 ||
  {
    tail -20 "$work/debootstrap.log" >&2
    die "debootstrap failed (run again to go on; packages already downloaded are kept)"
  }
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/etc/ssh/ssh_host_*
mkdir -p "$root/srv/vmbench" "$root/run/sshd"
cat >"$root/etc/ssh/sshd_config.d/vmbench.conf" <<'EOF'
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
EOF
cat >"$root/sbin/vmbench-init" <<'EOF'
#!/bin/sh
# PID 1 of a vmbench VM. From the kernel command line: vmbench.name,
# vmbench.ip (address/prefix) and vmbench.key (the client's public key,
# base64). The sshd's private host key, made by the host so that it knows
# the key before the first connection, comes on the data disk (/dev/vdb or
# /dev/ubdb, .vmbench/ssh_host_ed25519_key), never on the command line that every user
# of the host can read; it is moved off the disk at once. Without one a new
# key is made at each boot (the root disk is a snapshot); either way its
# public half goes to the serial console, which only the host reads.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
mkdir -p /run/sshd
for arg in $(cat /proc/cmdline); do
  case $arg in
  vmbench.name=*) hostname "${arg#vmbench.name=}" ;;
  vmbench.ip=*) ip=${arg#vmbench.ip=} ;;
  vmbench.key=*) key=${arg#vmbench.key=} ;;
  esac
done
ip link set lo up
# eth0 under QEMU, vec0 under UML: the one interface there is.
nic=$(ls /sys/class/net | grep -vx lo | head -1)
ip addr add "$ip" dev "$nic"
ip link set "$nic" up
mkdir -p /root/.ssh
echo "$key" | base64 -d >/root/.ssh/authorized_keys
chmod 700 /root/.ssh
chmod 600 /root/.ssh/authorized_keys
# The data disk: virtio's second disk under QEMU, the second ubd under UML.
for disk in /dev/vdb /dev/ubdb; do
  if [ -b "$disk" ]; then
    mount -t ext4 "$disk" /srv/vmbench && chmod 1777 /srv/vmbench
    break
  fi
done
if [ -f /srv/vmbench/.vmbench/ssh_host_ed25519_key ]; then
  install -m 600 /srv/vmbench/.vmbench/ssh_host_ed25519_key /etc/ssh/ssh_host_ed25519_key
  rm -rf /srv/vmbench/.vmbench
  ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key >/etc/ssh/ssh_host_ed25519_key.pub
else
  ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
fi
echo "vmbench-hostkey: $(cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub)" >/dev/console
exec tini -s -- /usr/sbin/sshd -D -e
EOF
chmod 755 "$root/sbin/vmbench-init"
touch "$out/root.done"
else
  step 3 "root tree: done before"
fi

step 4 "disk image of the tree"
size_mib=$(($(du -sm "$root" | cut -f1) + 256))
mkfs.ext4 -q -F -L vmbench-root -d "$root" "$out/root.img.part" "${size_mib}M"
mv "$out/root.img.part" "$out/root.img"
printf 'suite %s\nmirror %s\npackages %s\nkernel %s %s\nkey %s\n' \
  "$SUITE" "$MIRROR" "$PACKAGES" "$kernel_package" "$kernel_version" "$key" >"$out/inputs"
rm -rf "$work"
touch "$out/done"
say "built in $((SECONDS - started)) s: $out ($(du -sm "$out/root" | cut -f1) MiB tree, $(du -sm --apparent-size "$out/root.img" | cut -f1) MiB disk)"
echo "$out" >&3

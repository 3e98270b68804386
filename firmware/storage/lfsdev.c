// Flash image file as a MicroPython block device (see lfsdev.h).
//
// The device object implements the extended block protocol
// (readblocks/writeblocks with an offset, ioctl) that extmod/vfs_lfs.c uses.
#include "firmware/storage/lfsdev.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "extmod/vfs.h"
#include "extmod/vfs_lfs.h"
#include "py/mperrno.h"
#include "py/runtime.h"

static int flash_fd = -1;  // kept across VM resets: the flash outlives the VM
static size_t flash_bytes;

bool lfsdev_open(const char *path, size_t bytes, char *err, size_t err_len) {
  int fd;
  if (path) {
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  } else {
    char tmpl[] = "/tmp/fleetboard-flash-XXXXXX";
    fd = mkstemp(tmpl);
    if (fd >= 0) unlink(tmpl);
  }
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    snprintf(err, err_len, "cannot open flash image %s: %s", path ? path : "(temporary)", strerror(errno));
    if (fd >= 0) close(fd);
    return false;
  }
  size_t size = st.st_size > 0 ? (size_t)st.st_size : bytes;
  if (size < 16 * LFSDEV_BLOCK_SIZE || size % LFSDEV_BLOCK_SIZE != 0) {
    snprintf(err, err_len, "flash image %s: size %zu is not a multiple of %d bytes of at least 16 blocks",
             path ? path : "(temporary)", size, LFSDEV_BLOCK_SIZE);
    close(fd);
    return false;
  }
  if (st.st_size == 0 && ftruncate(fd, (off_t)size) != 0) {
    snprintf(err, err_len, "cannot size flash image: %s", strerror(errno));
    close(fd);
    return false;
  }
  flash_fd = fd;
  flash_bytes = size;
  return true;
}

void lfsdev_close(void) {
  if (flash_fd >= 0) {
    fdatasync(flash_fd);
    close(flash_fd);
  }
  flash_fd = -1;
}

size_t lfsdev_size(void) { return flash_bytes; }

// ---- The block device object -------------------------------------------------------

typedef struct {
  mp_obj_base_t base;
} lfsdev_obj_t;

static mp_obj_t transfer(size_t n_args, const mp_obj_t *args, bool write) {
  mp_buffer_info_t buf;
  mp_get_buffer_raise(args[2], &buf, write ? MP_BUFFER_READ : MP_BUFFER_WRITE);
  mp_int_t block = mp_obj_get_int(args[1]);
  mp_int_t offset = n_args > 3 ? mp_obj_get_int(args[3]) : 0;
  off_t pos = (off_t)block * LFSDEV_BLOCK_SIZE + offset;
  if (block < 0 || offset < 0 || (size_t)pos + buf.len > flash_bytes) mp_raise_OSError(MP_EIO);
  ssize_t n = write ? pwrite(flash_fd, buf.buf, buf.len, pos) : pread(flash_fd, buf.buf, buf.len, pos);
  if (n != (ssize_t)buf.len) mp_raise_OSError(MP_EIO);
  return mp_const_none;
}

static mp_obj_t lfsdev_readblocks(size_t n_args, const mp_obj_t *args) {
  return transfer(n_args, args, false);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(lfsdev_readblocks_obj, 3, 4, lfsdev_readblocks);

static mp_obj_t lfsdev_writeblocks(size_t n_args, const mp_obj_t *args) {
  return transfer(n_args, args, true);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(lfsdev_writeblocks_obj, 3, 4, lfsdev_writeblocks);

static mp_obj_t lfsdev_ioctl(mp_obj_t self, mp_obj_t op_in, mp_obj_t arg) {
  switch (mp_obj_get_int(op_in)) {
    case MP_BLOCKDEV_IOCTL_BLOCK_COUNT:
      return MP_OBJ_NEW_SMALL_INT(flash_bytes / LFSDEV_BLOCK_SIZE);
    case MP_BLOCKDEV_IOCTL_BLOCK_SIZE:
      return MP_OBJ_NEW_SMALL_INT(LFSDEV_BLOCK_SIZE);
    case MP_BLOCKDEV_IOCTL_SYNC:
      fdatasync(flash_fd);
      return MP_OBJ_NEW_SMALL_INT(0);
    default:  // INIT, DEINIT, BLOCK_ERASE: nothing to do for a file
      return MP_OBJ_NEW_SMALL_INT(0);
  }
}
static MP_DEFINE_CONST_FUN_OBJ_3(lfsdev_ioctl_obj, lfsdev_ioctl);

static const mp_rom_map_elem_t lfsdev_locals_table[] = {
    {MP_ROM_QSTR(MP_QSTR_readblocks), MP_ROM_PTR(&lfsdev_readblocks_obj)},
    {MP_ROM_QSTR(MP_QSTR_writeblocks), MP_ROM_PTR(&lfsdev_writeblocks_obj)},
    {MP_ROM_QSTR(MP_QSTR_ioctl), MP_ROM_PTR(&lfsdev_ioctl_obj)},
};
static MP_DEFINE_CONST_DICT(lfsdev_locals, lfsdev_locals_table);

MP_DEFINE_CONST_OBJ_TYPE(lfsdev_type, MP_QSTR_Flash, MP_TYPE_FLAG_NONE, locals_dict, &lfsdev_locals);

// ---- Mount -----------------------------------------------------------------------

// littlefs reads and writes through caches of 4 x max(readsize, progsize)
// bytes (extmod/vfs_lfsx.c). MicroPython's default of 32 makes them 128 bytes:
// a 64 KB file then took ~500 writes and as many read-backs of 128 bytes. A
// 1 KB read size gives one-block (4 KB) caches; the program size stays small,
// so metadata commits stay compact. Neither is stored on the flash: images
// written with other sizes mount as they are.
#define LFSDEV_READ_SIZE 1024
#define LFSDEV_PROG_SIZE 32

// VfsLfs2(bdev, ...) or VfsLfs2.mkfs(bdev, ...) with our cache geometry.
static mp_obj_t call_with_geometry(mp_obj_t fun, mp_obj_t bdev) {
  mp_obj_t args[] = {bdev, MP_OBJ_NEW_QSTR(MP_QSTR_readsize), MP_OBJ_NEW_SMALL_INT(LFSDEV_READ_SIZE),
                     MP_OBJ_NEW_QSTR(MP_QSTR_progsize), MP_OBJ_NEW_SMALL_INT(LFSDEV_PROG_SIZE)};
  return mp_call_function_n_kw(fun, 1, 2, args);
}

static mp_obj_t make_vfs(mp_obj_t bdev) {
  mp_obj_t vfs_type = MP_OBJ_FROM_PTR(&mp_type_vfs_lfs2);
  nlr_buf_t nlr;
  if (nlr_push(&nlr) == 0) {
    mp_obj_t vfs = call_with_geometry(vfs_type, bdev);
    nlr_pop();
    return vfs;
  }
  // A blank (or corrupt) image: format it, as a board does on first boot.
  call_with_geometry(mp_load_attr(vfs_type, MP_QSTR_mkfs), bdev);
  return call_with_geometry(vfs_type, bdev);
}

bool lfsdev_mount(char *err, size_t err_len) {
  nlr_buf_t nlr;
  if (nlr_push(&nlr) == 0) {
    lfsdev_obj_t *bdev = mp_obj_malloc(lfsdev_obj_t, &lfsdev_type);
    mp_obj_t args[2] = {make_vfs(MP_OBJ_FROM_PTR(bdev)), MP_OBJ_NEW_QSTR(MP_QSTR__slash_)};
    mp_vfs_mount(2, args, (mp_map_t *)&mp_const_empty_map);
    mp_vfs_chdir(MP_OBJ_NEW_QSTR(MP_QSTR__slash_));
    nlr_pop();
    return true;
  }
  snprintf(err, err_len, "cannot mount flash as littlefs");
  return false;
}

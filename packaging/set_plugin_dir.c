/*
 * weft_set_plugin_dir FILE DIR: writes DIR into the installed-plugin-directory slot of
 * FILE (an installed libweft.a), so that a program linked with it finds the installed
 * plugins with no environment variable. Run by `cmake --install` (install_finish.cmake).
 *
 * The slot (core/plugin_dirs.rs) is the marker below followed by ROOM bytes: a
 * NUL-terminated directory (empty in a fresh build) padded with NULs. Every slot in the
 * file is rewritten; a file with none, or a directory that does not fit, is an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MARKER "@weft-installed-plugin-dir@"
#define ROOM 4096

/* A slot holds a string and then only NULs: anything else is not a slot. */
static int is_slot(const unsigned char *room) {
  size_t i = 0;
  while (i < ROOM && room[i] != 0) i++;
  for (; i < ROOM; i++)
    if (room[i] != 0) return 0;
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: weft_set_plugin_dir LIBWEFT.A PLUGIN-DIRECTORY\n");
    return 2;
  }
  const char *path = argv[1], *dir = argv[2];
  size_t marker_len = strlen(MARKER), dir_len = strlen(dir);
  if (dir_len == 0 || dir_len >= ROOM || dir[0] != '/') {
    fprintf(stderr, "weft_set_plugin_dir: the plugin directory must be an absolute path shorter than %d bytes: %s\n", ROOM, dir);
    return 1;
  }
  FILE *file = fopen(path, "r+b");
  if (!file) {
    perror(path);
    return 1;
  }
  if (fseek(file, 0, SEEK_END) != 0) {
    perror(path);
    return 1;
  }
  long size = ftell(file);
  unsigned char *bytes = malloc(size > 0 ? (size_t)size : 1);
  if (size < 0 || !bytes || fseek(file, 0, SEEK_SET) != 0 || fread(bytes, 1, (size_t)size, file) != (size_t)size) {
    fprintf(stderr, "weft_set_plugin_dir: cannot read %s\n", path);
    return 1;
  }
  unsigned char room[ROOM] = {0};
  memcpy(room, dir, dir_len);
  int slots = 0;
  for (size_t at = 0; at + marker_len + ROOM <= (size_t)size; at++) {
    if (memcmp(bytes + at, MARKER, marker_len) != 0 || !is_slot(bytes + at + marker_len)) continue;
    if (fseek(file, (long)(at + marker_len), SEEK_SET) != 0 || fwrite(room, 1, ROOM, file) != ROOM) {
      fprintf(stderr, "weft_set_plugin_dir: cannot write %s\n", path);
      return 1;
    }
    slots++;
    at += marker_len + ROOM - 1;
  }
  free(bytes);
  if (fclose(file) != 0) {
    perror(path);
    return 1;
  }
  if (slots == 0) {
    fprintf(stderr, "weft_set_plugin_dir: %s has no plugin-directory slot (not a libweft.a of this version?)\n", path);
    return 1;
  }
  return 0;
}

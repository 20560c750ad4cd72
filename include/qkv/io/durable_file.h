// Crash-safe file operations: writes that are on disk before they are renamed into place, whole
// files replaced so that a full disk or a crash keeps the old one, and a directory swap. Every
// error is a qkv::Error "<path>: <what>: <OS reason>".
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace qkv::io {

// Throws qkv::Error "<where>: <what>: <strerror(err)>".
[[noreturn]] void throw_os_error(const std::string& where, std::string_view what, int err);

// Creates or truncates the file, writes bytes and fsyncs it. Like replace_file, it writes only
// a new or regular file (io::output_target): a device, FIFO or socket is refused.
void write_file_synced(const std::filesystem::path& path, std::string_view bytes);

// Replaces `path` whole (metrics.jsonl, config.toml, loss.svg, the latest and best pointers, a
// chart): the bytes go to "<path>.tmp-<pid>", which is written, checked, fsynced and renamed
// over `path`, then the directory is fsynced. A reader sees the old content or the new one. On
// any failure (a full disk, a read-only directory) the temporary file is removed, `path` keeps
// its old content, and a qkv::Error naming `path` is thrown. A symlink is followed: its
// target is replaced and the link kept.
void replace_file(const std::filesystem::path& path, std::string_view bytes);

// fsyncs a file, or a directory (so that the entries created or renamed in it are durable).
void sync_path(const std::filesystem::path& path);

// Renames the directory `from` to `to`. An existing `to` is swapped out in one step
// (RENAME_EXCHANGE), so `to` names a complete directory at every moment; the replaced directory
// is then at `from`, and that path is returned for the caller to delete. Filesystems without the
// exchange (NFS, older ZFS) take two renames through `aside` (returned then): a crash between
// them leaves `to` missing and the old directory at `aside`. Returns an empty path when nothing
// was replaced.
std::filesystem::path rename_dir_replacing(const std::filesystem::path& from,
                                           const std::filesystem::path& to,
                                           const std::filesystem::path& aside);

}  // namespace qkv::io

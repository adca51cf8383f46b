package granularartifactsextension // import "github.com/granular-dev/granular/collector-plugin/granularartifactsextension"

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// File names inside the store directory. Artifacts are stored as
// artifactPrefix+id and written through tempPrefix+random, so no id can name
// a temporary file, a directory or anything outside the store.
const (
	artifactPrefix = "a_"
	tempPrefix     = "t_"
	maxIDLength    = 200
)

var idPattern = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

var (
	// ErrInvalidID is returned for an id that is not [a-zA-Z0-9._-]{1,200}
	// or is "." or "..".
	ErrInvalidID = errors.New("invalid artifact id: want 1-200 characters of [a-zA-Z0-9._-], not \".\" or \"..\"")
	// ErrTooLarge is returned for an artifact over max_artifact_bytes.
	ErrTooLarge = errors.New("artifact exceeds max_artifact_bytes")
	// ErrNotFound is returned for an id the store does not hold.
	ErrNotFound = errors.New("artifact not found")
)

// ValidID reports whether id may name an artifact.
func ValidID(id string) bool {
	return len(id) <= maxIDLength && id != "." && id != ".." && idPattern.MatchString(id)
}

type item struct {
	size    int64
	modTime time.Time
}

// Info describes one stored artifact.
type Info struct {
	ID       string    `json:"id"`
	Bytes    int64     `json:"bytes"`
	Modified time.Time `json:"modified"`
}

// store is a bounded directory of artifact files. All file access goes
// through an os.Root, so even a symlink planted in the directory cannot make
// it read or write outside.
type store struct {
	mu        sync.Mutex
	root      *os.Root
	maxTotal  int64
	maxItem   int64
	retention time.Duration
	now       func() time.Time
	items     map[string]item
	total     int64
}

func openStore(dir string, maxTotal, maxItem int64, retention time.Duration, now func() time.Time) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create artifact directory: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open artifact directory: %w", err)
	}
	s := &store{root: root, maxTotal: maxTotal, maxItem: maxItem, retention: retention, now: now, items: map[string]item{}}
	entries, err := fs.ReadDir(root.FS(), ".")
	if err != nil {
		_ = root.Close()
		return nil, fmt.Errorf("read artifact directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, tempPrefix) && e.Type().IsRegular() {
			_ = root.Remove(name) // left over from a crash mid-write
			continue
		}
		id, ok := strings.CutPrefix(name, artifactPrefix)
		if !ok || !ValidID(id) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		s.items[id] = item{size: fi.Size(), modTime: fi.ModTime()}
		s.total += fi.Size()
	}
	s.mu.Lock()
	s.expireLocked()
	s.evictLocked(0)
	s.mu.Unlock()
	return s, nil
}

func (s *store) close() error { return s.root.Close() }

// put stores data under id, replacing an artifact of the same id, and
// deletes the oldest artifacts until the store fits max_total_bytes.
func (s *store) put(id string, data []byte) error {
	if !ValidID(id) {
		return ErrInvalidID
	}
	size := int64(len(data))
	if size > s.maxItem || size > s.maxTotal {
		return fmt.Errorf("%w: %d > %d bytes", ErrTooLarge, size, min(s.maxItem, s.maxTotal))
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := tempPrefix + hex.EncodeToString(rnd[:])

	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	if old, ok := s.items[id]; ok {
		_ = s.root.Remove(artifactPrefix + id)
		s.total -= old.size
		delete(s.items, id)
	}
	s.evictLocked(size)

	f, err := s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write artifact: %w", err)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = s.root.Remove(tmp)
		return fmt.Errorf("write artifact: %w", err)
	}
	if err := s.root.Rename(tmp, artifactPrefix+id); err != nil {
		_ = s.root.Remove(tmp)
		return fmt.Errorf("write artifact: %w", err)
	}
	s.items[id] = item{size: size, modTime: s.now()}
	s.total += size
	return nil
}

// open returns the artifact's file; the caller closes it.
func (s *store) open(id string) (*os.File, Info, error) {
	if !ValidID(id) {
		return nil, Info{}, ErrInvalidID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in, err := s.infoLocked(id)
	if err != nil {
		return nil, Info{}, err
	}
	f, err := s.root.Open(artifactPrefix + id)
	if err != nil {
		return nil, Info{}, ErrNotFound
	}
	return f, in, nil
}

// info describes the artifact id, or fails as open does.
func (s *store) info(id string) (Info, error) {
	if !ValidID(id) {
		return Info{}, ErrInvalidID
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.infoLocked(id)
}

func (s *store) infoLocked(id string) (Info, error) {
	s.expireLocked()
	it, ok := s.items[id]
	if !ok {
		return Info{}, ErrNotFound
	}
	return Info{ID: id, Bytes: it.size, Modified: it.modTime}, nil
}

// list returns the stored artifacts, newest first.
func (s *store) list() []Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	out := make([]Info, 0, len(s.items))
	for id, it := range s.items {
		out = append(out, Info{ID: id, Bytes: it.size, Modified: it.modTime})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Modified.Equal(out[j].Modified) {
			return out[i].Modified.After(out[j].Modified)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func (s *store) totalBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

func (s *store) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
}

func (s *store) removeLocked(id string) {
	_ = s.root.Remove(artifactPrefix + id)
	s.total -= s.items[id].size
	delete(s.items, id)
}

func (s *store) expireLocked() {
	if s.retention <= 0 {
		return
	}
	cutoff := s.now().Add(-s.retention)
	for id, it := range s.items {
		if it.modTime.Before(cutoff) {
			s.removeLocked(id)
		}
	}
}

// evictLocked deletes the oldest artifacts until incoming more bytes fit.
func (s *store) evictLocked(incoming int64) {
	for s.total+incoming > s.maxTotal && len(s.items) > 0 {
		oldestID, oldest := "", time.Time{}
		for id, it := range s.items {
			if oldestID == "" || it.modTime.Before(oldest) || (it.modTime.Equal(oldest) && id < oldestID) {
				oldestID, oldest = id, it.modTime
			}
		}
		s.removeLocked(oldestID)
	}
}

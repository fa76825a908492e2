package watch_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/rumorhq/rumor/watch"
)

func Example() {
	dir, _ := os.MkdirTemp("", "watch")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "secret")
	os.WriteFile(path, []byte("first"), 0o600)

	f := watch.NewFiles(1<<10, path)
	contents, sum, err := f.Read()
	if err != nil {
		panic(err)
	}
	f.Take(sum) // the owner uses what it read
	fmt.Printf("%s\n", contents[0])

	changed, _, _ := f.Check(false)
	fmt.Println("changed:", changed != nil)

	// A rotation: a new file renamed over the old one.
	os.WriteFile(path+".new", []byte("second"), 0o600)
	os.Rename(path+".new", path)
	changed, sum, _ = f.Check(false)
	f.Take(sum)
	fmt.Printf("%s\n", changed[0])
	// Output:
	// first
	// changed: false
	// second
}

package recipe_test

import (
	"context"
	"fmt"
	"log"
	"strconv"

	"github.com/coordkit/coordkit/coord"
	"github.com/coordkit/coordkit/coord/coordtest"
	"github.com/coordkit/coordkit/coord/recipe"
)

// openNode starts a one-member cluster for an example (in a service:
// coord.Open).
func openNode() (*coord.Node, func()) {
	c, err := coordtest.Start(context.Background(), 1)
	if err != nil {
		log.Fatal(err)
	}
	return c.Node(0), c.Close
}

// Move stock between two warehouses atomically: the function may run
// again if another writer changed either key meanwhile.
func ExampleSTM() {
	n, done := openNode()
	defer done()
	ctx := context.Background()
	n.Put(ctx, "/stock/a", []byte("10"))
	n.Put(ctx, "/stock/b", []byte("3"))
	_, err := recipe.STM(ctx, n, func(tx *recipe.Tx) error {
		a, err := tx.Get("/stock/a")
		if err != nil {
			return err
		}
		b, err := tx.Get("/stock/b")
		if err != nil {
			return err
		}
		av, _ := strconv.Atoi(string(a))
		bv, _ := strconv.Atoi(string(b))
		tx.Put("/stock/a", []byte(strconv.Itoa(av-4)))
		tx.Put("/stock/b", []byte(strconv.Itoa(bv+4)))
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	a, _ := n.Get(ctx, "/stock/a")
	b, _ := n.Get(ctx, "/stock/b")
	fmt.Printf("a=%s b=%s\n", a.KVs[0].Value, b.KVs[0].Value)
	// Output: a=6 b=7
}

func ExampleCounter() {
	n, done := openNode()
	defer done()
	ctx := context.Background()
	c := recipe.NewCounter(n, "/counters/jobs")
	c.Add(ctx, 5)
	v, _ := c.Add(ctx, -2)
	fmt.Println(v)
	// Output: 3
}
